"""Lua scripts that make multi-key updates atomic inside Redis.

Why one module of about 490 lines: the scripts share helper functions (counter and month
encodings) that are spliced into each script's text, and they are reviewed together with
:mod:`.rules_python`, their Python twin; split, a reader would have to reassemble each
script from several files.

Each script is the twin of a function in :mod:`.rules_python` (same field names, same
encodings); the store behaviour suite runs both implementations against the same
expectations. Counters are varints (total, then up to ``recent_limit`` epoch seconds as
the oldest and the gaps between them); all of one offer's counters share the field
``o<offer>`` (a tag byte per subject), and one that would make it 64 bytes or longer gets a
field named by its one-letter subject code and the offer id (``S<offer>`` issues,
``I<offer>`` impressions, ...). A month's spend and purchases share the field ``mYYYYMM``.
"""

from __future__ import annotations

from runtime.stores.contact_lua import CONTACT_HELPERS
from runtime.stores.values import OFFER_VALUE_MAX, SUBJECT_ORDER

_COUNTER_HELPERS = r"""
-- Counters: unsigned LEB128 varints, the total, then the oldest kept timestamp, then each
-- next timestamp's gap to the previous one (encoding.encode_counter). Lua numbers are doubles:
-- exact for these integers.
local function unvarints(v)
  local vals = {}
  if not v then return vals end
  local n, scale = 0, 1
  for i = 1, #v do
    local b = string.byte(v, i)
    if b >= 128 then
      n = n + (b - 128) * scale
      scale = scale * 128
    else
      vals[#vals + 1] = n + b * scale
      n, scale = 0, 1
    end
  end
  return vals
end

local function decode(v)
  local vals = unvarints(v)
  local ts = {}
  local t = 0
  for i = 2, #vals do
    t = t + vals[i]
    ts[#ts + 1] = t
  end
  return vals[1] or 0, ts
end

local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

local function encode(total, ts)
  local parts = {varint(total)}
  local prev = 0
  for i = 1, #ts do
    parts[#parts + 1] = varint(ts[i] - prev)
    prev = ts[i]
  end
  return table.concat(parts)
end

local function bump(v, t, limit)
  local total, ts = decode(v)
  ts[#ts + 1] = t
  table.sort(ts)
  while #ts > limit do table.remove(ts, 1) end
  return encode(total + 1, ts)
end

-- All counters of an offer live in one field o<offer> (encoding.join_offer): per subject, in
-- the order of ORDER, a tag byte 16 * (position - 1) + number of varints, then the counter.
-- A counter that would make that value longer than OFFER_MAX bytes is kept in a field of its
-- own, <code><offer> (encoding.put_counter), so the hash stays a listpack.
local ORDER, OFFER_MAX = '@ORDER@', @OFFER_VALUE_MAX@

local function split(v)
  local parts = {}
  if not v then return parts end
  local pos, len = 1, #v
  while pos <= len do
    local tag = string.byte(v, pos)
    pos = pos + 1
    local start, left = pos, tag % 16
    while left > 0 and pos <= len do
      if string.byte(v, pos) < 128 then left = left - 1 end
      pos = pos + 1
    end
    local i = math.floor(tag / 16) + 1
    parts[string.sub(ORDER, i, i)] = string.sub(v, start, pos - 1)
  end
  return parts
end

local function join(parts)
  local out = {}
  for i = 1, #ORDER do
    local b = parts[string.sub(ORDER, i, i)]
    if b then
      local n = 0
      for j = 1, #b do if string.byte(b, j) < 128 then n = n + 1 end end
      out[#out + 1] = string.char(16 * (i - 1) + n)
      out[#out + 1] = b
    end
  end
  return table.concat(out)
end

-- The counter bytes of (code, offer) in hash key, or false.
local function get_counter(key, code, offer)
  local b = split(redis.call('HGET', key, 'o' .. offer))[code]
  if b then return b end
  return redis.call('HGET', key, code .. offer)
end

-- Store (blob) or drop (nil) the counter of (code, offer).
local function put_counter(key, code, offer, blob)
  local name, alone = 'o' .. offer, code .. offer
  local parts = split(redis.call('HGET', key, name))
  parts[code] = nil
  local spilled = nil
  if blob then
    parts[code] = blob
    if #join(parts) > OFFER_MAX then
      parts[code] = nil
      spilled = blob
    end
  end
  local joined = join(parts)
  if joined ~= '' then redis.call('HSET', key, name, joined) else redis.call('HDEL', key, name) end
  if spilled then redis.call('HSET', key, alone, spilled) else redis.call('HDEL', key, alone) end
end
""".replace("@ORDER@", "".join(SUBJECT_ORDER)).replace("@OFFER_VALUE_MAX@", str(OFFER_VALUE_MAX))

#: KEYS: per event (dedup key, state key, cache key, history key, profile key).
#: ARGV: dedup_ttl, state_ttl, recent_limit, month_cutoff, then per event
#:       (type code, ts, offer_id or '', amount_minor, month, history record or '',
#:        catalog fingerprint of the record).
#: A record is appended (APPEND: no read-modify-write) only when the member's profile has
#: the record's fingerprint, or no profile exists yet (then one is created with it).
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
    if (string.sub(name, 1, 1) == 'm' and string.sub(name, 2) < cutoff)
        or ((head == 's:' or head == 'p:') and string.sub(name, 3) < cutoff) then
      redis.call('HDEL', key, name)
    end
  end
end

local function append(kh, kp, rec, fp)
  local cur = redis.call('HGET', kp, 'fp')
  if not cur then
    redis.call('HSET', kp, 'fp', fp)
    cur = fp
  end
  if cur == fp then
    redis.call('APPEND', kh, rec)
    redis.call('EXPIRE', kh, state_ttl)
  end
  redis.call('EXPIRE', kp, state_ttl)
end

for i = 0, #KEYS / 5 - 1 do
  local kd, ks, kc = KEYS[5 * i + 1], KEYS[5 * i + 2], KEYS[5 * i + 3]
  local kh, kp = KEYS[5 * i + 4], KEYS[5 * i + 5]
  local a = 4 + 7 * i
  local code, t, offer = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local amount, month = tonumber(ARGV[a + 4]), ARGV[a + 5]
  local rec, fp = ARGV[a + 6], ARGV[a + 7]
  if redis.call('SET', kd, '1', 'NX', 'EX', dedup_ttl) then
    if rec ~= '' then append(kh, kp, rec, fp) end
    hmax(ks, 'ls', t)
    if code == 'txn' then
      redis.call('HINCRBY', ks, 'sp', amount)
      redis.call('HINCRBY', ks, 'np', 1)
      hmax(ks, 'lp', t)
      if month >= cutoff then
        -- one field per month: varints of the zigzag-coded spend and the purchases (encoding.encode_month)
        local mf = 'm' .. month
        local cur = redis.call('HGET', ks, mf)
        if not cur then trim(ks) end
        local vals = unvarints(cur)
        local z = vals[1] or 0
        local spend = z / 2
        if z % 2 == 1 then spend = -(z + 1) / 2 end
        spend = spend + amount
        if spend >= 0 then z = spend * 2 else z = -spend * 2 - 1 end
        redis.call('HSET', ks, mf, varint(z) .. varint((vals[2] or 0) + 1))
      end
    elseif offer ~= '' then
      put_counter(ks, code, offer, bump(get_counter(ks, code, offer), t, limit))
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

_RESERVE_ONE = r"""
-- Check-and-increment one request against the member hash ks: its issue cap in its window.
-- Budgets are not here: they live in the {budgets} slot (budgets_lua, two_phase).
-- Whether the member's issue cap of the offer is reached (issue counter bytes v).
local function cap_reached(v, now, limit, mlimit, window)
  if mlimit < 0 then return false end
  local total, ts = decode(v)
  local used = total
  if window >= 0 then
    used = 0
    for _, t in ipairs(ts) do if t >= now - window then used = used + 1 end end
    -- every kept timestamp inside the window: there may be more; count conservatively
    if #ts >= limit and ts[1] >= now - window then used = math.max(used, total) end
  end
  return used >= mlimit
end

-- Returns the refusal reason, nil when granted (and counted).
local function reserve_one(ks, now, limit, offer, mlimit, window, imp)
  local v = get_counter(ks, 'S', offer)
  if cap_reached(v, now, limit, mlimit, window) then return 'MEMBER_CAP_REACHED' end
  put_counter(ks, 'S', offer, bump(v, now, limit))
  if imp == '1' then
    put_counter(ks, 'I', offer, bump(get_counter(ks, 'I', offer), now, limit))
  end
  return nil
end

-- The 4 arguments of one request starting after ARGV[a].
local function request_at(a)
  return ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 4]
end
"""

#: KEYS[1]: member state key.
#: ARGV: state_ttl, now, recent_limit, then per request
#:       (offer_id, member_limit or -1, window or -1, count_impression 0/1).
#: Returns per request {granted 1/0, reason or ''}.
RESERVE = _COUNTER_HELPERS + _RESERVE_ONE + r"""
local ks = KEYS[1]
local state_ttl, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local granted_any = false
for i = 0, (#ARGV - 3) / 4 - 1 do
  local offer, mlimit, window, imp = request_at(3 + 4 * i)
  local refused = reserve_one(ks, now, limit, offer, mlimit, window, imp)
  if refused then
    out[#out + 1] = {0, refused}
  else
    granted_any = true
    out[#out + 1] = {1, ''}
  end
end
if granted_any then redis.call('EXPIRE', ks, state_ttl) end
return out
"""

#: A decision's member-side write in one call (its budgets were reserved before, two_phase).
#: KEYS[1]: member state key, KEYS[2]: cache key, KEYS[3]: history key, KEYS[4]: the member's
#:          held coupons (wallet hash: offer id -> coupon record), then coupon keys (by index).
#: ARGV: state_ttl, now, recent_limit, cache slot ('' = no cache write), score bytes,
#:       cache_ttl, history length the scores were computed from, then the contact caps
#:       (contact_lua: their number, then per cap name, period id, max offers, max contacts),
#:       then per request the 4 RESERVE arguments plus (coupon key index or 0, coupon record,
#:       coupon ttl).
#: A request the contact caps refuse (one more offer, or one more contact for the slate's
#: first offer, would pass a cap) is CONTACT_CAPPED. A request that wants a coupon while the
#: member holds a live, unredeemed one for the offer gets that coupon again and reserves
#: nothing (no issue), unless the member's issue cap is reached (then it is refused as
#: MEMBER_CAP_REACHED, as a decision reading the counter would have excluded it: a held code
#: never makes a capped offer reappear). Otherwise it is reserved, and when granted its coupon
#: is stored (SET NX) and added to the wallet. Every granted offer counts into the contact caps.
#: The scores are cached only while the history still has that length (no event came
#: in between). Returns {cached 1/0, per request {granted, reason, -1, -1,
#: coupon stored 1/0 or 2 when reused, the reused record or ''}}.
COMMIT = _COUNTER_HELPERS + _RESERVE_ONE + CONTACT_HELPERS + r"""
local ks, kc, kh, kw = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state_ttl, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slot, vec, cttl, hlen = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local caps, head = contact_load(ks, 7)
local counted = false
local out = {}
local granted_any = false

-- The member's live, unredeemed coupon for the offer (its record), or nil.
local function held(offer)
  local rec = redis.call('HGET', kw, offer)
  if not rec then return nil end
  local c = cjson.decode(rec)
  if (c.redeemed_event_id == nil or c.redeemed_event_id == cjson.null) and tonumber(c.expires_at) > now then
    return rec
  end
  return nil
end

for i = 0, (#ARGV - head) / 7 - 1 do
  local a = head + 7 * i
  local offer, mlimit, window, imp = request_at(a)
  local cidx, crec, cttl_c = tonumber(ARGV[a + 5]), ARGV[a + 6], ARGV[a + 7]
  local again = nil
  if cidx > 0 then again = held(offer) end
  if contact_refused(caps, counted) then
    out[#out + 1] = {0, 'CONTACT_CAPPED', -1, -1, 0, ''}
  elseif again and cap_reached(get_counter(ks, 'S', offer), now, limit, mlimit, window) then
    out[#out + 1] = {0, 'MEMBER_CAP_REACHED', -1, -1, 0, ''}
  elseif again then
    contact_count(caps, counted)
    counted = true
    out[#out + 1] = {1, '', -1, -1, 2, again}
  else
    local refused = reserve_one(ks, now, limit, offer, mlimit, window, imp)
    if refused then
      out[#out + 1] = {0, refused, -1, -1, 0, ''}
    else
      granted_any = true
      contact_count(caps, counted)
      counted = true
      local stored = 0
      if cidx > 0 and redis.call('SET', KEYS[cidx], crec, 'NX', 'EX', cttl_c) then
        stored = 1
        redis.call('HSET', kw, offer, crec)
        if redis.call('TTL', kw) < tonumber(cttl_c) then redis.call('EXPIRE', kw, cttl_c) end
      end
      out[#out + 1] = {1, '', -1, -1, stored, ''}
    end
  end
end
if counted then contact_save(ks, caps) end
if granted_any or counted then redis.call('EXPIRE', ks, state_ttl) end
local cached = 0
if slot ~= '' and redis.call('STRLEN', kh) == hlen then
  redis.call('HSET', kc, slot, vec)
  redis.call('EXPIRE', kc, cttl)
  cached = 1
end
return {cached, out}
"""

#: KEYS[1]: member state key.
#: ARGV: per granted reservation (offer_id, issued_at, count_impression 0/1).
RELEASE = _COUNTER_HELPERS + r"""
local ks = KEYS[1]

local function unbump(code, offer, t)
  local total, ts = decode(get_counter(ks, code, offer))
  for j = 1, #ts do
    if ts[j] == t then table.remove(ts, j) break end
  end
  total = math.max(total - 1, 0)
  if total > 0 or #ts > 0 then
    put_counter(ks, code, offer, encode(total, ts))
  else
    put_counter(ks, code, offer, nil)
  end
end

for i = 0, #ARGV / 3 - 1 do
  local a = 3 * i
  local offer, t, imp = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  unbump('S', offer, t)
  if imp == '1' then unbump('I', offer, t) end
end
return 1
"""


#: Replace a member's history and profile only while neither changed (Store.upgrade_member).
#: KEYS: history, profile. ARGV: expected history length, expected profile fp, new history,
#: TTL, then the new profile's field/value pairs.
UPGRADE_MEMBER = r"""
if redis.call('STRLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[2], 'fp') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

_CLAIM_HELPERS = r"""
local function is_null(v) return v == nil or v == cjson.null end
"""

#: Check and redeem coupons, all or none (coupon_records.check_claim is the twin).
#: KEYS: per claim (coupon key, the claiming member's wallet key).
#: ARGV: per claim (member_id, offer_id, at, event_id).
#: Returns per claim {status, the record after the call or ''}.
REDEEM = _CLAIM_HELPERS + r"""
local n = #KEYS / 2
local status, recs, blobs, claimed = {}, {}, {}, {}
local failed = false
for i = 1, n do
  local kc = KEYS[2 * i - 1]
  local member, offer, at, ev = ARGV[4 * i - 3], ARGV[4 * i - 2], tonumber(ARGV[4 * i - 1]), ARGV[4 * i]
  local blob = redis.call('GET', kc)
  local s = 'ok'
  if not blob then
    s = 'missing'
  else
    local c = cjson.decode(blob)
    recs[i] = c
    if c.member_id ~= member then s = 'member'
    elseif c.offer_id ~= offer then s = 'offer'
    elseif not is_null(c.redeemed_event_id) then
      if c.redeemed_event_id == ev then s = 'again' else s = 'redeemed' end
    elseif claimed[kc] and claimed[kc] ~= ev then s = 'redeemed'
    elseif at >= tonumber(c.expires_at) then s = 'expired'
    else claimed[kc] = ev end
  end
  status[i], blobs[i] = s, blob or ''
  if s ~= 'ok' and s ~= 'again' then failed = true end
end
if not failed then
  for i = 1, n do
    if status[i] == 'ok' then
      local c = recs[i]
      c.redeemed_at = tonumber(ARGV[4 * i - 1])
      c.redeemed_event_id = ARGV[4 * i]
      blobs[i] = cjson.encode(c)
      redis.call('SET', KEYS[2 * i - 1], blobs[i], 'KEEPTTL')
      redis.call('HDEL', KEYS[2 * i], c.offer_id)
    end
  end
end
local out = {}
for i = 1, n do out[i] = {status[i], blobs[i]} end
return out
"""

#: Undo redemptions (coupon_records.unredeemed is the twin).
#: KEYS: per claim (coupon key, wallet key); ARGV: per claim the event id that redeemed it.
#: The coupon goes back into the wallet (whose TTL is raised to the coupon's if shorter).
UNREDEEM = _CLAIM_HELPERS + r"""
for i = 1, #KEYS / 2 do
  local kc, kw = KEYS[2 * i - 1], KEYS[2 * i]
  local blob = redis.call('GET', kc)
  if blob then
    local c = cjson.decode(blob)
    if not is_null(c.redeemed_event_id) and c.redeemed_event_id == ARGV[i] then
      c.redeemed_at = nil
      c.redeemed_event_id = nil
      local rec = cjson.encode(c)
      redis.call('SET', kc, rec, 'KEEPTTL')
      redis.call('HSET', kw, c.offer_id, rec)
      local ttl = redis.call('TTL', kc)
      if ttl > 0 and redis.call('TTL', kw) < ttl then redis.call('EXPIRE', kw, ttl) end
    end
  end
end
return 1
"""
