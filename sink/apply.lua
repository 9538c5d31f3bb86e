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
--       nc, nc x (channel "a"|"w", source, offset, message_id)
--       with the counts sorted by (source, offset).
--
-- Returns {created, launches counted, visits counted,
--          messageId duplicates, redelivered records}.
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

local created = redis.call('EXISTS', p) == 0
local changed = created
local pset, mset = {}, {}

-- fields: last writer wins by event time, ties to the greater value
local nf = tonumber(ARGV[5])
local i = 6
if nf > 0 then
  local tkeys, vkeys = {}, {}
  for k = 0, nf - 1 do
    local name = ARGV[i + 3 * k]
    tkeys[#tkeys + 1] = 't:' .. name
    if name == 'coordinates' then
      vkeys[#vkeys + 1] = 'latitude'
      vkeys[#vkeys + 1] = 'longitude'
    else
      vkeys[#vkeys + 1] = name
    end
  end
  local times = redis.call('HMGET', m, unpack(tkeys))
  local vals = redis.call('HMGET', p, unpack(vkeys))
  local vi = 1
  local newTraits = 0
  for k = 1, nf do
    local name, value, tText = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local t = tonumber(tText)
    i = i + 3
    local cur
    if name == 'coordinates' then
      if vals[vi] then cur = vals[vi] .. ',' .. (vals[vi + 1] or '') end
      vi = vi + 2
    else
      cur = vals[vi]
      vi = vi + 1
    end
    local curT = times[k] and tonumber(times[k])
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
    local nt = redis.call('HINCRBY', m, 'nt', newTraits)
    if nt > maxTraits then
      -- keep the max_traits smallest keys in byte order
      local keys = {}
      for _, f in ipairs(redis.call('HKEYS', p)) do
        if string.sub(f, 1, 6) == 'trait.' then keys[#keys + 1] = f end
      end
      -- traits set by this call are not in the hash yet
      for k = 1, #pset, 2 do
        if string.sub(pset[k], 1, 6) == 'trait.' and redis.call('HEXISTS', p, pset[k]) == 0 then
          keys[#keys + 1] = pset[k]
        end
      end
      table.sort(keys, function(a, b) return gt(b, a) end)
      local evict = {}
      for k = maxTraits + 1, #keys do evict[keys[k]] = true end
      local keep = {}
      for k = 1, #pset, 2 do
        if not evict[pset[k]] then
          keep[#keep + 1] = pset[k]
          keep[#keep + 1] = pset[k + 1]
        end
      end
      pset = keep
      local keepm = {}
      for k = 1, #mset, 2 do
        if not evict[string.sub(mset[k], 3)] then
          keepm[#keepm + 1] = mset[k]
          keepm[#keepm + 1] = mset[k + 1]
        end
      end
      mset = keepm
      for f in pairs(evict) do
        redis.call('HDEL', p, f)
        redis.call('HDEL', m, 't:' .. f)
      end
      redis.call('HSET', m, 'nt', maxTraits)
    end
  end
end

-- first and last seen: earliest and latest launch or visit
local fMs, fText, fCh = ARGV[i], ARGV[i + 1], ARGV[i + 2]
local lMs, lText, lCh = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
i = i + 6
if fCh ~= '' then
  local cur = redis.call('HMGET', m, 'fs', 'ls')
  local ch = redis.call('HMGET', p, 'first_seen_channel', 'last_seen_channel')
  local ft, lt = tonumber(fMs), tonumber(lMs)
  local cf, cl = cur[1] and tonumber(cur[1]), cur[2] and tonumber(cur[2])
  if (not cf) or ft < cf or (ft == cf and gt(fCh, ch[1] or '')) then
    mset[#mset + 1] = 'fs'
    mset[#mset + 1] = fMs
    pset[#pset + 1] = 'first_seen'
    pset[#pset + 1] = fText
    pset[#pset + 1] = 'first_seen_channel'
    pset[#pset + 1] = fCh
    changed = true
  end
  if (not cl) or lt > cl or (lt == cl and gt(lCh, ch[2] or '')) then
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
local nc = tonumber(ARGV[i])
i = i + 1
local launches, visits, dupMsg, dupRedelivered = 0, 0, 0, 0
if nc > 0 then
  if window > 0 then
    redis.call('ZREMRANGEBYSCORE', d, '-inf', now - window)
  end
  local wm, moved = {}, {}
  local added = false
  for _ = 1, nc do
    local ch, src, offText, mid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local off = tonumber(offText)
    i = i + 4
    local w = wm[src]
    if w == nil then
      w = tonumber(redis.call('HGET', m, 'o:' .. src) or '-1')
      wm[src] = w
    end
    if off <= w then
      dupRedelivered = dupRedelivered + 1
    else
      wm[src] = off
      moved[src] = offText
      if mid ~= '' and window > 0 and redis.call('ZSCORE', d, mid) then
        dupMsg = dupMsg + 1
      else
        if mid ~= '' and window > 0 then
          redis.call('ZADD', d, ARGV[1], mid)
          added = true
        end
        if ch == 'a' then launches = launches + 1 else visits = visits + 1 end
      end
    end
  end
  for src, offText in pairs(moved) do
    mset[#mset + 1] = 'o:' .. src
    mset[#mset + 1] = offText
  end
  if added then redis.call('PEXPIRE', d, window) end
end

if created then
  pset[#pset + 1] = 'created_at'
  pset[#pset + 1] = nowText
  pset[#pset + 1] = 'app_launches'
  pset[#pset + 1] = launches
  pset[#pset + 1] = 'web_visits'
  pset[#pset + 1] = visits
else
  if launches > 0 then redis.call('HINCRBY', p, 'app_launches', launches); changed = true end
  if visits > 0 then redis.call('HINCRBY', p, 'web_visits', visits); changed = true end
end
if changed then
  pset[#pset + 1] = 'updated_at'
  pset[#pset + 1] = nowText
end
if #pset > 0 then redis.call('HSET', p, unpack(pset)) end
if #mset > 0 then redis.call('HSET', m, unpack(mset)) end
return {created and 1 or 0, launches, visits, dupMsg, dupRedelivered}
