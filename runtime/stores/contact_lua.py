"""The contact policy's Lua helpers, spliced into the member ``COMMIT`` script of :mod:`.rules_lua`.

A member's contact counters live in their state hash (one slot with the member's caps), one
field per cap: ``x<name>`` (``xall.week``, ``xemail.day``) holding ``<period id>|<offers>|<contacts>``
(``w2024-23|2|1``). A field of an earlier period counts as zero and is overwritten, so the
hash never grows. The twin is :mod:`.contact_rules`.

ARGV layout read by ``contact_load`` from position ``a``: the number of caps, then per cap
(name, period id, max offers or -1, max contacts or -1).
"""

from __future__ import annotations

CONTACT_HELPERS = r"""
-- The caps a commit counts against, with their current counts (earlier periods count zero).
local function contact_load(ks, a)
  local n = tonumber(ARGV[a + 1])
  local caps = {}
  for i = 0, n - 1 do
    local b = a + 1 + 4 * i
    local c = {field = 'x' .. ARGV[b + 1], period = ARGV[b + 2], mo = tonumber(ARGV[b + 3]),
               mc = tonumber(ARGV[b + 4]), o = 0, k = 0}
    local cur = redis.call('HGET', ks, c.field)
    if cur then
      local p, o, k = string.match(cur, '^([^|]*)|(%d+)|(%d+)$')
      if p == c.period then c.o, c.k = tonumber(o), tonumber(k) end
    end
    caps[#caps + 1] = c
  end
  return caps, a + 1 + 4 * n
end

-- Whether one more offer (and, when the slate is not counted yet, one more contact) passes a cap.
local function contact_refused(caps, counted)
  for _, c in ipairs(caps) do
    if c.mo >= 0 and c.o + 1 > c.mo then return true end
    if not counted and c.mc >= 0 and c.k + 1 > c.mc then return true end
  end
  return false
end

local function contact_count(caps, counted)
  for _, c in ipairs(caps) do
    c.o = c.o + 1
    if not counted then c.k = c.k + 1 end
  end
end

local function contact_save(ks, caps)
  for _, c in ipairs(caps) do redis.call('HSET', ks, c.field, c.period .. '|' .. c.o .. '|' .. c.k) end
end
"""
