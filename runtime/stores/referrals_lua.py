"""Referral links as Lua scripts run inside Redis (twins in :mod:`.referral_rules`; the cluster's
two-slot link at the end, used by :mod:`.cluster_referrals`).

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

# -- the cluster's two-slot link (runtime.stores.cluster_referrals) ----------------------------
# On a Redis Cluster the referee's and the referrer's hashes are in different slots, so LINK is
# three scripts, each in one slot. The referrer's hash keeps a field ``r:<referee>`` for every
# referee it reserved a place for, which is what lets the referee's step see a loop in flight.

LINK_RESERVE = r"""
local referee, referrer = ARGV[1], ARGV[2]
local now, limit, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if referee == referrer then return 'self' end
if redis.call('HGET', KEYS[1], 'by') == referee then return 'loop' end
if redis.call('HEXISTS', KEYS[1], 'r:' .. referee) == 1 then return 'reserved' end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if limit > 0 and n >= limit then return 'limit' end
redis.call('HSET', KEYS[1], 'r:' .. referee, now)
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('EXPIRE', KEYS[1], ttl)
return 'reserved'
"""
"""Step 1, the referrer's slot (KEYS: the referrer's referral hash; ARGV: referee, referrer, now,
limit, TTL): ``self``, ``loop`` (the referrer was referred by the referee), ``limit``, or
``reserved`` (a place counted in ``n``, marked ``r:<referee>``; already marked: reserved again)."""

LINK_SET = r"""
local referee, referrer, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local by = redis.call('HGET', KEYS[1], 'by')
if by then
  if by == referrer then return 'linked' end
  return 'already_referred'
end
if redis.call('HEXISTS', KEYS[1], 'r:' .. referrer) == 1 then return 'loop' end
redis.call('HSET', KEYS[1], 'by', referrer, 'at', now)
redis.call('EXPIRE', KEYS[1], ttl)
return 'linked'
"""
"""Step 2, the referee's slot (KEYS: the referee's referral hash; ARGV: referee, referrer, now, TTL):
``linked`` (also when this link was already made), ``already_referred``, or ``loop`` when the
referee has reserved a place as the referrer's referrer (the opposite link in flight or made)."""

LINK_RELEASE = r"""
if redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 1
"""
"""Step 3, the referrer's slot again, when step 2 refused (KEYS: the referrer's referral hash;
ARGV: referee): the reserved place is given back."""
