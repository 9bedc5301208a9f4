"""The points ledger's atomic rule as a Lua script run inside Redis (twin of :mod:`models.points_account`).

``POST_POINTS`` applies one member's postings in one atomic step: expire due lots, merge lots
that became available, apply each posting unless its cause was applied before, expire again,
and keep the entries. :mod:`models.points_account` documents the rule and the account's fields; both
must stay the same rule (``tests/test_points_ledger.py`` compares them).

``SUBSCRIBE`` starts or renews a paid plan: its end is kept in the account as ``P<plan>`` (epoch
seconds), renewed from the current end when the plan is active, else from now; idempotent by
cause (KEYS: the account, the causes; ARGV: plan, term seconds, now, cause, TTL). Returns JSON
``{status: started|renewed|duplicate, expires_at}``.

POST_POINTS' KEYS: 1 the account hash, 2 the recent-entries list, 3 the applied-causes hash (all the
member's, so a Redis Cluster hash tag keeps them in one slot).
ARGV: 1 now (epoch s), 2 TTL (s), 3 entries kept, 4 member id, 5 the postings (JSON array of
``{c, k, u, ts, x, a, of, amt, m}``). Returns the reply as JSON.

Arithmetic: Lua numbers are doubles, exact for integers below 2^53; :func:`idiv` floors a
division exactly for such integers, and a refund's share is computed as
``(u // a) * r + ((u % a) * r) // a``, exact while ``a * r`` stays below 2^53 (purchase lines
below about 90 million minor units).
"""

SUBSCRIBE = r"""
local plan, term, now, cause, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local seen = redis.call('HGET', KEYS[2], cause)
if seen then
  local r = cjson.decode(seen)
  return cjson.encode({status = 'duplicate', expires_at = r.x})
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'P' .. plan) or '0')
local status = 'started'
local from = now
if cur > now then status = 'renewed'; from = cur end
local ends = from + term
redis.call('HSET', KEYS[1], 'P' .. plan, string.format('%d', ends))
redis.call('HSET', KEYS[2], cause, cjson.encode({s = 0, x = ends}))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return cjson.encode({status = status, expires_at = ends})
"""

POST_POINTS = r"""
local UNIT = 10000
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local member = ARGV[4]
local postings = cjson.decode(ARGV[5])

local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

local f = {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do f[raw[i]] = tonumber(raw[i + 1]) end
local function get(name) return f[name] or 0 end
local function add(name, d) f[name] = get(name) + d end
local dirty = {}
local function lotname(a, x) return 'l' .. string.format('%d', a) .. ':' .. string.format('%d', x) end

local function lots()
  local out = {}
  for name, v in pairs(f) do
    if string.sub(name, 1, 1) == 'l' then
      local a, x = string.match(name, '^l(%-?%d+):(%-?%d+)$')
      out[#out + 1] = {tonumber(a), tonumber(x), v}
    end
  end
  table.sort(out, function(p, q)
    local pz, qz = p[2] == 0, q[2] == 0
    if pz ~= qz then return qz end
    if p[2] ~= q[2] then return p[2] < q[2] end
    return p[1] < q[1]
  end)
  return out
end

local function put_lot(a, x, pts)
  local name = lotname(a, x)
  local v = get(name) + pts
  if v > 0 then f[name] = v else f[name] = nil end
  dirty[name] = true
end

local function balance()
  local s = 0
  for _, l in ipairs(lots()) do if l[1] <= now then s = s + l[3] end end
  return s - get('d')
end

local function pending()
  local s = 0
  for _, l in ipairs(lots()) do if l[1] > now then s = s + l[3] end end
  return s
end

local function take(pts, first, pending_too)
  local order = lots()
  if first then
    local front, rest = {}, {}
    for _, l in ipairs(order) do
      if lotname(l[1], l[2]) == first then front[#front + 1] = l else rest[#rest + 1] = l end
    end
    for _, l in ipairs(rest) do front[#front + 1] = l end
    order = front
  end
  for _, l in ipairs(order) do
    if pts <= 0 then break end
    if not (l[1] > now and not pending_too) then
      local n = math.min(l[3], pts)
      put_lot(l[1], l[2], -n)
      pts = pts - n
    end
  end
  return pts
end

local entries = {}
local function entry(kind, pts, units, cause, ts, x, a, meta)
  add('n', 1)
  local e = {seq = get('n'), member_id = member, kind = kind, points = pts, units = units, cause = cause,
             ts = ts, at = now, balance = balance(), pending = pending(), x = x, a = a, m = meta}
  entries[#entries + 1] = e
  return e
end

local function expire()
  for _, l in ipairs(lots()) do
    if l[2] ~= 0 and l[2] <= now then
      put_lot(l[1], l[2], -l[3])
      add('X', l[3])
      entry('expire', -l[3], -l[3] * UNIT, 'expire:' .. string.format('%d', l[1]) .. ':' .. string.format('%d', l[2]),
            l[2], l[2], l[1], {})
    end
  end
end

expire()
for _, l in ipairs(lots()) do
  if l[1] > 0 and l[1] <= now then
    put_lot(l[1], l[2], -l[3])
    put_lot(0, l[2], l[3])
  end
end

local results = {}
for _, p in ipairs(postings) do
  local cause, kind, units, ts = p.c, p.k, tonumber(p.u), tonumber(p.ts)
  local x, a, meta = tonumber(p.x or 0), tonumber(p.a or 0), p.m or {}
  local seen = redis.call('HGET', KEYS[3], cause)
  if seen then
    results[#results + 1] = {cause = cause, status = 'duplicate', seq = cjson.decode(seen).s}
  else
    local record, e = nil, nil
    if kind == 'earn' or (kind == 'adjust' and units > 0) then
      local total = units
      if kind == 'earn' then total = get('r') + units end
      local pts = idiv(total, UNIT)
      if kind == 'earn' then f['r'] = total - pts * UNIT end
      local repay = math.min(get('d'), pts)
      add('d', -repay)
      local la = 0
      if a > now then la = a end
      put_lot(la, x, pts - repay)
      if kind == 'earn' then add('E', pts) else add('A', pts) end
      record = {u = units, l = lotname(la, x), a = tonumber(p.amt or 0), ra = 0, ru = 0}
      e = entry(kind, pts, units, cause, ts, x, a, meta)
    elseif kind == 'burn' or kind == 'adjust' then
      local pts = idiv(-units, UNIT)
      local bal = balance()
      if pts > bal then
        results[#results + 1] = {cause = cause, status = 'refused', balance = bal}
      else
        take(pts, nil, false)
        if kind == 'burn' then add('B', pts) else add('A', -pts) end
        record = {}
        e = entry(kind, -pts, units, cause, ts, 0, 0, meta)
      end
    else
      local back = -units
      local first = nil
      if p.of then
        back = 0
        local stored = redis.call('HGET', KEYS[3], p.of)
        if stored then
          local o = cjson.decode(stored)
          local refunded, target = o.a, o.u
          if o.a > 0 then
            refunded = math.min(o.ra + tonumber(p.amt or 0), o.a)
            target = idiv(o.u, o.a) * refunded + idiv((o.u - idiv(o.u, o.a) * o.a) * refunded, o.a)
          end
          back = target - o.ru
          o.ra, o.ru = refunded, target
          redis.call('HSET', KEYS[3], p.of, cjson.encode(o))
          first = o.l
        end
      end
      local total = get('r') - back
      local pts = -idiv(total, UNIT)
      f['r'] = total + pts * UNIT
      local left = take(pts, first, true)
      if left > 0 then add('d', left) end
      add('V', pts)
      record = {}
      e = entry('reverse', -pts, -back, cause, ts, 0, 0, meta)
    end
    if e then
      record.s = e.seq
      redis.call('HSET', KEYS[3], cause, cjson.encode(record))
      results[#results + 1] = {cause = cause, status = 'applied', seq = e.seq, points = e.points}
    end
  end
end
expire()

local out = {}
for name, v in pairs(f) do
  if string.sub(name, 1, 1) ~= 'l' then out[#out + 1] = name; out[#out + 1] = string.format('%d', v) end
end
for name, _ in pairs(dirty) do
  if f[name] == nil then redis.call('HDEL', KEYS[1], name) end
end
for _, l in ipairs(lots()) do
  out[#out + 1] = lotname(l[1], l[2]); out[#out + 1] = string.format('%d', l[3])
end
if #out > 0 then
  redis.call('HSET', KEYS[1], unpack(out))
  redis.call('EXPIRE', KEYS[1], ttl)
end
for _, e in ipairs(entries) do redis.call('LPUSH', KEYS[2], cjson.encode(e)) end
if #entries > 0 then
  redis.call('LTRIM', KEYS[2], 0, keep - 1)
  redis.call('EXPIRE', KEYS[2], ttl)
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ttl) end

local totals = {E = get('E'), B = get('B'), X = get('X'), A = get('A'), V = get('V')}
return cjson.encode({results = results, entries = entries, balance = balance(), pending = pending(),
                     fraction = get('r'), debt = get('d'), lots = lots(), totals = totals})
"""
