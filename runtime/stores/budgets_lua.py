"""Budget reservations as Lua scripts run inside Redis (twins in :mod:`.budget_rules`).

Every budget counter key carries the hash tag ``{budgets}`` (``ofr:b:{budgets}:<key>:<period>``),
so all of them live in one Redis Cluster slot and one script reserves every budget of a
decision (or of a batch chunk) atomically; the member's own keys are reserved by the member
scripts of :mod:`.rules_lua`, in their slot. :mod:`.two_phase` runs the two in order.

``RESERVE_BUDGETS`` - KEYS: the distinct budget counter hashes (fields ``n`` issues, ``m``
minor units). ARGV: ``now`` (unused by the rules, kept for logs), then per request the
number of claims and per claim (key index, count limit or -1, money limit or -1, paced count
or -1, paced money or -1, charge, ttl). Requests are taken in order; a request is granted
when every claim fits its limit and its paced allowance, and then counts one issue and its
charge into each claim's counter (whose TTL is set to the claim's: its period's end plus
the grace), else nothing is counted and the reason is ``BUDGET_EXHAUSTED`` (a limit) or
``BUDGET_PACED`` (only an allowance). Returns per request {granted 1/0, reason or '',
first claim's n, m after the reservation (as found when refused)}.

``RELEASE_BUDGETS`` - KEYS: the counters; ARGV: per claim (key index, charge). Gives back one
issue and the charge of each (never below zero; a counter that expired stays absent).
"""

from __future__ import annotations

RESERVE_BUDGETS = r"""
local out = {}
local a = 1
while a < #ARGV do
  local nclaims = tonumber(ARGV[a + 1])
  local claims = {}
  local reason = nil
  for c = 0, nclaims - 1 do
    local b = a + 1 + 7 * c
    local cl = {key = KEYS[tonumber(ARGV[b + 1])], climit = tonumber(ARGV[b + 2]), mlimit = tonumber(ARGV[b + 3]),
                pcount = tonumber(ARGV[b + 4]), pminor = tonumber(ARGV[b + 5]), charge = tonumber(ARGV[b + 6]),
                ttl = tonumber(ARGV[b + 7])}
    local cur = redis.call('HMGET', cl.key, 'n', 'm')
    cl.n, cl.m = tonumber(cur[1] or '0'), tonumber(cur[2] or '0')
    if (cl.climit >= 0 and cl.n + 1 > cl.climit) or (cl.mlimit >= 0 and cl.m + cl.charge > cl.mlimit) then
      reason = 'BUDGET_EXHAUSTED'
    elseif not reason and ((cl.pcount >= 0 and cl.n + 1 > cl.pcount)
                           or (cl.pminor >= 0 and cl.m + cl.charge > cl.pminor)) then
      reason = 'BUDGET_PACED'
    end
    claims[#claims + 1] = cl
  end
  a = a + 1 + 7 * nclaims
  if not reason then
    for _, cl in ipairs(claims) do
      cl.n = redis.call('HINCRBY', cl.key, 'n', 1)
      cl.m = redis.call('HINCRBY', cl.key, 'm', cl.charge)
      redis.call('EXPIRE', cl.key, cl.ttl)
    end
  end
  local first = claims[1] or {n = -1, m = -1}
  if reason then out[#out + 1] = {0, reason, first.n, first.m} else out[#out + 1] = {1, '', first.n, first.m} end
end
return out
"""

RELEASE_BUDGETS = r"""
for i = 0, #ARGV / 2 - 1 do
  local key, charge = KEYS[tonumber(ARGV[2 * i + 1])], tonumber(ARGV[2 * i + 2])
  if redis.call('EXISTS', key) == 1 then
    local cur = redis.call('HMGET', key, 'n', 'm')
    local dn, dm = math.min(1, tonumber(cur[1] or '0')), math.min(charge, tonumber(cur[2] or '0'))
    -- (a negated 0 would be sent as "-0", which HINCRBY refuses)
    if dn > 0 then redis.call('HINCRBY', key, 'n', -dn) end
    if dm > 0 then redis.call('HINCRBY', key, 'm', -dm) end
  end
end
return 1
"""
