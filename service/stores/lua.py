"""Lua scripts that make multi-key updates atomic inside Redis.

Each script is the twin of a function in :mod:`.codec` (same field names, same
encodings); the store behaviour suite runs both implementations against the same
expectations. Counters are packed with Redis' bundled ``struct`` library as
little-endian uint32 (total, then up to ``recent_limit`` epoch seconds, oldest first).
"""

from __future__ import annotations

_COUNTER_HELPERS = r"""
local function decode(v)
  if not v then return 0, {} end
  local total = struct.unpack('<I4', v, 1)
  local ts = {}
  local pos = 5
  while pos + 3 <= #v do
    local t
    t, pos = struct.unpack('<I4', v, pos)
    ts[#ts + 1] = t
  end
  return total, ts
end

local function encode(total, ts)
  local parts = {struct.pack('<I4', total)}
  for i = 1, #ts do parts[#parts + 1] = struct.pack('<I4', ts[i]) end
  return table.concat(parts)
end

local function bump(v, t, limit)
  local total, ts = decode(v)
  ts[#ts + 1] = t
  table.sort(ts)
  while #ts > limit do table.remove(ts, 1) end
  return encode(total + 1, ts)
end
"""

#: KEYS: per event (dedup key, state key, cache key).
#: ARGV: dedup_ttl, state_ttl, recent_limit, month_cutoff, then per event
#:       (type code, ts, offer_id or '', amount_minor, month).
#: Returns one 1 (applied) or 0 (duplicate) per event.
APPLY_EVENTS = _COUNTER_HELPERS + r"""
local dedup_ttl, state_ttl = ARGV[1], ARGV[2]
local limit, cutoff = tonumber(ARGV[3]), ARGV[4]
local out = {}

local function hmax(key, field, t)
  local cur = tonumber(redis.call('HGET', key, field) or '0')
  if t > cur then redis.call('HSET', key, field, t) end
end

local function trim(key)
  local names = redis.call('HKEYS', key)
  for _, name in ipairs(names) do
    local head = string.sub(name, 1, 2)
    if (head == 's:' or head == 'p:') and string.sub(name, 3) < cutoff then
      redis.call('HDEL', key, name)
    end
  end
end

for i = 0, #KEYS / 3 - 1 do
  local kd, ks, kc = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 4 + 5 * i
  local code, t, offer = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local amount, month = tonumber(ARGV[a + 4]), ARGV[a + 5]
  if redis.call('SET', kd, '1', 'NX', 'EX', dedup_ttl) then
    hmax(ks, 'ls', t)
    if code == 'txn' then
      redis.call('HINCRBY', ks, 'sp', amount)
      redis.call('HINCRBY', ks, 'np', 1)
      hmax(ks, 'lp', t)
      if month >= cutoff then
        local sf = 's:' .. month
        if redis.call('HEXISTS', ks, sf) == 0 then trim(ks) end
        redis.call('HINCRBY', ks, sf, amount)
        redis.call('HINCRBY', ks, 'p:' .. month, 1)
      end
    elseif offer ~= '' then
      local f = code .. ':' .. offer
      redis.call('HSET', ks, f, bump(redis.call('HGET', ks, f), t, limit))
    end
    redis.call('EXPIRE', ks, state_ttl)
    redis.call('DEL', kc)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

#: KEYS[1]: member state key; KEYS[2..]: budget hashes (fields n = issues, m = minor units).
#: ARGV: state_ttl, now, recent_limit, then per request
#:       (offer_id, member_limit or -1, window or -1, budget key index or 0,
#:        count limit or -1, minor limit or -1, charge_minor, budget_ttl, count_impression 0/1).
#: Returns per request {granted 1/0, reason or '', budget n or -1, budget m or -1}.
RESERVE = _COUNTER_HELPERS + r"""
local ks = KEYS[1]
local state_ttl, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local granted_any = false
for i = 0, (#ARGV - 3) / 9 - 1 do
  local a = 3 + 9 * i
  local offer = ARGV[a + 1]
  local mlimit, window = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local bidx, climit, mnlimit = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local charge, bttl, imp = tonumber(ARGV[a + 7]), ARGV[a + 8], ARGV[a + 9]
  local f = 'iss:' .. offer
  local v = redis.call('HGET', ks, f)
  local refused = nil
  local bn, bm = -1, -1
  if mlimit >= 0 then
    local total, ts = decode(v)
    local used = total
    if window >= 0 then
      used = 0
      for _, t in ipairs(ts) do if t >= now - window then used = used + 1 end end
      -- every kept timestamp inside the window: there may be more; count conservatively
      if #ts >= limit and ts[1] >= now - window then used = math.max(used, total) end
    end
    if used >= mlimit then refused = 'MEMBER_CAP_REACHED' end
  end
  if not refused and bidx > 0 then
    local kb = KEYS[bidx]
    local cur = redis.call('HMGET', kb, 'n', 'm')
    bn, bm = tonumber(cur[1] or '0'), tonumber(cur[2] or '0')
    if (climit >= 0 and bn + 1 > climit) or (mnlimit >= 0 and bm + charge > mnlimit) then
      refused = 'BUDGET_EXHAUSTED'
    else
      bn = redis.call('HINCRBY', kb, 'n', 1)
      bm = redis.call('HINCRBY', kb, 'm', charge)
      if redis.call('TTL', kb) < 0 then redis.call('EXPIRE', kb, bttl) end
    end
  end
  if refused then
    out[#out + 1] = {0, refused, bn, bm}
  else
    redis.call('HSET', ks, f, bump(v, now, limit))
    if imp == '1' then
      local fi = 'imp:' .. offer
      redis.call('HSET', ks, fi, bump(redis.call('HGET', ks, fi), now, limit))
    end
    granted_any = true
    out[#out + 1] = {1, '', bn, bm}
  end
end
if granted_any then redis.call('EXPIRE', ks, state_ttl) end
return out
"""

#: KEYS[1]: member state key; KEYS[2..]: budget hashes.
#: ARGV: per granted reservation (offer_id, issued_at, budget key index or 0, charge_minor,
#:       count_impression 0/1).
RELEASE = _COUNTER_HELPERS + r"""
local ks = KEYS[1]

local function unbump(f, t)
  local total, ts = decode(redis.call('HGET', ks, f))
  for j = 1, #ts do
    if ts[j] == t then table.remove(ts, j) break end
  end
  total = math.max(total - 1, 0)
  if total > 0 or #ts > 0 then
    redis.call('HSET', ks, f, encode(total, ts))
  else
    redis.call('HDEL', ks, f)
  end
end

for i = 0, #ARGV / 5 - 1 do
  local a = 5 * i
  local offer, t = ARGV[a + 1], tonumber(ARGV[a + 2])
  local bidx, charge, imp = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  unbump('iss:' .. offer, t)
  if imp == '1' then unbump('imp:' .. offer, t) end
  if bidx > 0 and redis.call('EXISTS', KEYS[bidx]) == 1 then
    local cur = redis.call('HMGET', KEYS[bidx], 'n', 'm')
    redis.call('HINCRBY', KEYS[bidx], 'n', -math.min(1, tonumber(cur[1] or '0')))
    redis.call('HINCRBY', KEYS[bidx], 'm', -math.min(charge, tonumber(cur[2] or '0')))
  end
end
return 1
"""
