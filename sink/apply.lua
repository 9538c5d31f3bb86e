-- profiled: apply one folded update to one profile, atomically.
--
-- KEYS[1] profile hash   <prefix>profile:{<id>}
-- KEYS[2] meta hash      <prefix>profile:{<id>}:m   per-field event times
--                        ("t:<field>"), first/last seen times ("fs","ls"),
--                        custom trait count ("nt") and per-log offset
--                        watermarks ("o:<source>")
-- KEYS[3] dedupe zset    <prefix>profile:{<id>}:d   messageId -> applied at (ms)
--
-- ARGV: now_ms, now_text, window_ms, max_traits,
--       nf, nf x (name, value, time_ms),
--       first_ms, first_text, first_channel, last_ms, last_text, last_channel
--       (channel "" when the update saw no launch or visit),
--       ns, ns x source,
--       nc, nc x (channel "a"|"w", source index (1-based), offset, message_id)
--       with the counts sorted by (source, offset).
--
-- Returns {created, launches counted, visits counted,
--          messageId duplicates, redelivered records}.
--
-- The script reads everything it needs in two HMGETs (and one ZMSCORE),
-- and writes with one HSET per hash: each Redis call inside a script costs
-- about as much as the Lua around it.
--
-- Lua's "<" on strings follows the server's collation locale, so ties are
-- broken with an explicit byte comparison.
local function gt(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local p, m, d = KEYS[1], KEYS[2], KEYS[3]
local now, nowText = tonumber(ARGV[1]), ARGV[2]
local window, maxTraits = tonumber(ARGV[3]), tonumber(ARGV[4])

-- locate the sections of ARGV
local nf = tonumber(ARGV[5])
local fi = 6                 -- first field triple
local si = fi + 3 * nf       -- seen: 6 values
local ns = tonumber(ARGV[si + 6])
local srci = si + 7          -- sources
local nc = tonumber(ARGV[srci + ns])
local ci = srci + ns + 1     -- count quadruples

-- one read of each hash
local mkeys = {'fs', 'ls', 'nt'}
local pkeys = {'created_at', 'first_seen_channel', 'last_seen_channel', 'app_launches', 'web_visits'}
for k = 0, nf - 1 do
  local name = ARGV[fi + 3 * k]
  mkeys[#mkeys + 1] = 't:' .. name
  if name == 'coordinates' then
    pkeys[#pkeys + 1] = 'latitude'
    pkeys[#pkeys + 1] = 'longitude'
  else
    pkeys[#pkeys + 1] = name
  end
end
local mbase = #mkeys
for k = 0, ns - 1 do
  mkeys[#mkeys + 1] = 'o:' .. ARGV[srci + k]
end
local mv = redis.call('HMGET', m, unpack(mkeys))
local pv = redis.call('HMGET', p, unpack(pkeys))

local created = not pv[1]
local changed = created
local pset, mset = {}, {}

-- fields: last writer wins by event time, ties to the greater value
local vi = 6
local newTraits = 0
for k = 0, nf - 1 do
  local name, value, tText = ARGV[fi + 3 * k], ARGV[fi + 3 * k + 1], ARGV[fi + 3 * k + 2]
  local t = tonumber(tText)
  local cur
  if name == 'coordinates' then
    if pv[vi] then cur = pv[vi] .. ',' .. (pv[vi + 1] or '') end
    vi = vi + 2
  else
    cur = pv[vi]
    vi = vi + 1
  end
  local curT = mv[4 + k] and tonumber(mv[4 + k])
  if (not curT) or t > curT or (t == curT and gt(value, cur or '')) then
    mset[#mset + 1] = 't:' .. name
    mset[#mset + 1] = tText
    if not curT and string.sub(name, 1, 6) == 'trait.' then newTraits = newTraits + 1 end
    if value ~= cur then
      changed = true
      if name == 'coordinates' then
        local comma = string.find(value, ',', 1, true)
        pset[#pset + 1] = 'latitude'
        pset[#pset + 1] = string.sub(value, 1, comma - 1)
        pset[#pset + 1] = 'longitude'
        pset[#pset + 1] = string.sub(value, comma + 1)
      else
        pset[#pset + 1] = name
        pset[#pset + 1] = value
      end
    end
  end
end

if newTraits > 0 then
  local nt = tonumber(mv[3] or '0') + newTraits
  if nt > maxTraits then
    -- keep the max_traits smallest keys in byte order (rare: read them all)
    local keys, inHash = {}, {}
    for _, f in ipairs(redis.call('HKEYS', p)) do
      if string.sub(f, 1, 6) == 'trait.' then
        keys[#keys + 1] = f
        inHash[f] = true
      end
    end
    for k = 1, #pset, 2 do
      if string.sub(pset[k], 1, 6) == 'trait.' and not inHash[pset[k]] then
        keys[#keys + 1] = pset[k]
      end
    end
    table.sort(keys, function(a, b) return gt(b, a) end)
    local evict = {}
    local gone = {}
    for k = maxTraits + 1, #keys do
      evict[keys[k]] = true
      if inHash[keys[k]] then gone[#gone + 1] = keys[k] end
    end
    local keep = {}
    for k = 1, #pset, 2 do
      if not evict[pset[k]] then
        keep[#keep + 1] = pset[k]
        keep[#keep + 1] = pset[k + 1]
      end
    end
    pset = keep
    local keepm, goneT = {}, {}
    for k = 1, #mset, 2 do
      if not evict[string.sub(mset[k], 3)] then
        keepm[#keepm + 1] = mset[k]
        keepm[#keepm + 1] = mset[k + 1]
      end
    end
    mset = keepm
    for _, f in ipairs(gone) do goneT[#goneT + 1] = 't:' .. f end
    if #gone > 0 then
      redis.call('HDEL', p, unpack(gone))
      redis.call('HDEL', m, unpack(goneT))
    end
    nt = maxTraits
  end
  mset[#mset + 1] = 'nt'
  mset[#mset + 1] = nt
end

-- first and last seen: earliest and latest launch or visit
local fMs, fText, fCh = ARGV[si], ARGV[si + 1], ARGV[si + 2]
local lMs, lText, lCh = ARGV[si + 3], ARGV[si + 4], ARGV[si + 5]
if fCh ~= '' then
  local ft, lt = tonumber(fMs), tonumber(lMs)
  local cf, cl = mv[1] and tonumber(mv[1]), mv[2] and tonumber(mv[2])
  if (not cf) or ft < cf or (ft == cf and gt(fCh, pv[2] or '')) then
    mset[#mset + 1] = 'fs'
    mset[#mset + 1] = fMs
    pset[#pset + 1] = 'first_seen'
    pset[#pset + 1] = fText
    pset[#pset + 1] = 'first_seen_channel'
    pset[#pset + 1] = fCh
    changed = true
  end
  if (not cl) or lt > cl or (lt == cl and gt(lCh, pv[3] or '')) then
    mset[#mset + 1] = 'ls'
    mset[#mset + 1] = lMs
    pset[#pset + 1] = 'last_seen'
    pset[#pset + 1] = lText
    pset[#pset + 1] = 'last_seen_channel'
    pset[#pset + 1] = lCh
    changed = true
  end
end

-- counts: each record once (offset watermark per log), each messageId once
-- per window
local launches, visits, dupMsg, dupRedelivered = 0, 0, 0, 0
if nc > 0 then
  local wm, moved = {}, {}
  for k = 1, ns do wm[k] = tonumber(mv[mbase + k] or '-1') end
  -- records above the watermarks, and their messageIds
  local fresh, mids = {}, {}
  for k = 0, nc - 1 do
    local j = ci + 4 * k
    local src, offText = tonumber(ARGV[j + 1]), ARGV[j + 2]
    local off = tonumber(offText)
    if off <= wm[src] then
      dupRedelivered = dupRedelivered + 1
    else
      wm[src] = off
      moved[src] = offText
      fresh[#fresh + 1] = j
      if window > 0 and ARGV[j + 3] ~= '' then mids[#mids + 1] = ARGV[j + 3] end
    end
  end
  local known = {}
  if #mids > 0 then
    local scores = redis.call('ZMSCORE', d, unpack(mids))
    local oldest = now - window
    for k = 1, #mids do
      if scores[k] and tonumber(scores[k]) > oldest then known[mids[k]] = true end
    end
  end
  local add = {}
  for _, j in ipairs(fresh) do
    local mid = ARGV[j + 3]
    if window > 0 and mid ~= '' and known[mid] then
      dupMsg = dupMsg + 1
    else
      if window > 0 and mid ~= '' then
        known[mid] = true
        add[#add + 1] = ARGV[1]
        add[#add + 1] = mid
      end
      if ARGV[j] == 'a' then launches = launches + 1 else visits = visits + 1 end
    end
  end
  for k, offText in pairs(moved) do
    mset[#mset + 1] = 'o:' .. ARGV[srci + k - 1]
    mset[#mset + 1] = offText
  end
  if #add > 0 then
    redis.call('ZADD', d, unpack(add))
    redis.call('PEXPIRE', d, window)
    -- forget what left the window: often enough to bound memory, rarely
    -- enough to stay cheap (the window check above uses the scores anyway)
    if now % 16 == 0 then
      redis.call('ZREMRANGEBYSCORE', d, '-inf', now - window)
    end
  end
end

if created then
  pset[#pset + 1] = 'created_at'
  pset[#pset + 1] = nowText
end
if created or launches > 0 then
  pset[#pset + 1] = 'app_launches'
  pset[#pset + 1] = tonumber(pv[4] or '0') + launches
end
if created or visits > 0 then
  pset[#pset + 1] = 'web_visits'
  pset[#pset + 1] = tonumber(pv[5] or '0') + visits
end
if launches > 0 or visits > 0 then changed = true end
if changed then
  pset[#pset + 1] = 'updated_at'
  pset[#pset + 1] = nowText
end
if #pset > 0 then redis.call('HSET', p, unpack(pset)) end
if #mset > 0 then redis.call('HSET', m, unpack(mset)) end
return {created and 1 or 0, launches, visits, dupMsg, dupRedelivered}
