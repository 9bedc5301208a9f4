"""Referral links as Lua scripts run inside Redis (twins in :mod:`.referral_rules`).

``CLAIM_CODE`` gives a member their referral code: the one they have, else the candidate, if
no one holds it (KEYS: the member's referral hash, the candidate code's key; ARGV: member,
candidate, TTL). Returns the member's code, or an empty string when the candidate is taken
(draw another).

``LINK`` records that a referee was referred by a referrer, once and within the limits
(KEYS: the referee's and the referrer's referral hashes; ARGV: referee, referrer, now, the
referrer's limit (0: none), TTL). Returns ``linked``, ``self``, ``loop`` (the referrer was
referred by the referee), ``already_referred`` or ``limit``. Longer loops are checked by the
caller, which walks the referrer's chain first.
"""

CLAIM_CODE = r"""
local have = redis.call('HGET', KEYS[1], 'code')
if have then return have end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', tonumber(ARGV[3])) then
  redis.call('HSET', KEYS[1], 'code', ARGV[2])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return ARGV[2]
end
return ''
"""

LINK = r"""
local referee, referrer = ARGV[1], ARGV[2]
local now, limit, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if referee == referrer then return 'self' end
if redis.call('HGET', KEYS[2], 'by') == referee then return 'loop' end
if redis.call('HEXISTS', KEYS[1], 'by') == 1 then return 'already_referred' end
local n = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
if limit > 0 and n >= limit then return 'limit' end
redis.call('HSET', KEYS[1], 'by', referrer, 'at', now)
redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 'linked'
"""
