-- profiled: apply one folded update to one profile, atomically.
--
-- KEYS[1] profile hash   <prefix>profile:{<id>}
-- KEYS[2] meta hash      <prefix>profile:{<id>}:m   per-field event times
--                        ("t:<field>"), first/last seen times ("fs","ls"),
--                        custom trait count ("nt"), pending link
--                        reservations ("lp"), per-log offset watermarks
--                        ("o:<source>") and, per anonymous id linked to
--                        this user, per-log watermarks of its routed
--                        records ("r:<source>|<anonymous id>")
-- KEYS[3] dedupe zset    <prefix>profile:{<id>}:d   messageId -> score:
--                        -(2 x ms applied at + 1) for a launch, -(2 x ms)
--                        for a visit (see applied)
-- KEYS[4] link key       mode 'a': <prefix>profile:{anon:<A>}:link, the
--                        user A is linked to; other modes: the user's links
--                        hash <prefix>profile:{<U>}:links, anonymous id ->
--                        'r' (reserved, claim pending) | 'f' (folded in)
-- KEYS[5..] mode 'u', only when every key is on one Redis node (not a
--                        Cluster): for each anonymous id to link, its link
--                        key, profile hash, meta hash, dedupe set and
--                        snapshot hash (see "links" below)
--
-- ARGV: now_ms, now_text, mode, anon (mode 'u' with KEYS[5..]: the user id),
--       sizes: twelve numbers of three bytes each (big-endian): nf (fields),
--         ntr (the first custom trait's index among them, 0-based), ns
--         (sources), nc (counts), fast (1 or 0), launches, visits, nm (0,
--         or nc with messageId deduplication on), np (counts with a
--         messageId), nl (anonymous ids to link), nmk, npk (meta and
--         profile fields to read),
--       first_ms, first_text, first_channel, last_ms, last_text, last_channel
--       (channel "" when the update saw no launch or visit),
--       ns x (lowest offset, highest offset) of its counts,
--       the counts in one string, each "<channel><source> <offset>;"
--       (channel "a" launch, "w" visit, "d" a count whose messageId an
--       earlier count of the list carries, which counts nothing; source
--       index 1-based; read only when a record is redelivered or a
--       messageId is known; launches and visits in sizes leave the "d"
--       counts out),
--       nm x message_id ("" for none and for "d"), np x (score,
--       message_id) for the other counts that have one,
--       nl x anonymous id to link (mode 'u'),
--       nmk x meta field (nf x "t:<field>", then ns x watermark field),
--       npk x profile field of each field ("latitude", "longitude" for
--       coordinates), nf x (value, time_ms),
--       and in mode 'f' only: launches, visits, nm, nm x (message_id, score),
--       nw, nw x (source, offset): the anonymous id's frozen history.
--
-- The counts come sorted by (source, offset). The caller works out what it
-- can: every field name the script reads or writes, each count's dedupe
-- score (see applied), the launches and visits, and "fast"
-- (1 when the offsets rise within each source; a messageId that repeats
-- within the list is marked "d", see the counts),
-- so that the common case costs no Lua per count: every count above its
-- log's watermark and no messageId known within the window.
--
-- Modes:
--   'u' a user's own update; reserves the anonymous ids to link
--   'a' an anonymous id's own update; refused when the id is linked
--   'r' an update of anonymous id <anon> routed to its user; refused until
--       the id's history was folded in
--   'f' the fold of anonymous id <anon>'s frozen history into its user,
--       applied once
--
-- Returns {status, created, launches counted, visits counted,
--          messageId duplicates, redelivered records, messageIds forgotten,
--          custom traits evicted by the per-profile limit,
--          owner, (anonymous id, link state)...},
-- or in the common case (status 0, every launch and visit counted, none of
-- the rest, not mode 'f') only created, 1 or 0: a reply of nine values
-- costs Redis and the caller more than the rest of a short call's answer.
-- status 0 applied, 1 refused: linked to owner (mode 'a'), 2 refused: not
-- folded yet (mode 'r'), 3 already folded (mode 'f'); link state 'f' linked
-- to this user, 'r' reserved (claim it), 'l' refused by the limit, 'n'
-- linked to this user by this call (one node, no history).
--
-- The script reads everything it needs in two HMGETs (and a ZMSCORE, or a
-- ZADD NX for a single messageId), and writes with one HSET per hash: each
-- Redis call inside a script costs about as much as the Lua around it.
-- Calls that take a list take it in slices (Lua's unpack stops at a few
-- thousand values), so one busy profile's share of a batch cannot make the
-- script fail.
--
-- the globals the script uses, as locals: a global is a table lookup at
-- every use, a local a register
local ARGV, KEYS, tonumber, unpack, type, ipairs, pairs = ARGV, KEYS, tonumber, unpack, type, ipairs, pairs
local call_, byte, sub, format, gmatch, find = redis.call, string.byte, string.sub, string.format, string.gmatch, string.find
local min, floor = math.min, math.floor

-- Lua's "<" on strings follows the server's collation locale, so ties are
-- broken with an explicit byte comparison.
local function gt(a, b)
  if a == b then return false end
  local n = min(#a, #b)
  for i = 1, n do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local SLICE = 1000

-- applied reads a dedupe score: the time (ms) its messageId was applied,
-- and whether the record was a launch. A score is -(2 * time + 1) for a
-- launch and -(2 * time) for a visit: an integer, which a small sorted set
-- keeps as one (no float to parse on every comparison), and the lowest
-- so far, so that it goes in at the head. Scores of an earlier form,
-- time (+ 0.5 for a launch), are positive and still read.
local function applied(sc)
  if sc < 0 then
    local v = -sc
    local k = v % 2
    return (v - k) / 2, k == 1
  end
  return floor(sc), sc % 1 ~= 0
end

-- call runs cmd on key with the values of list, SLICE values (a multiple
-- of step) at a time, and returns the replies joined.
local function call(cmd, key, list, step)
  local out = {}
  local n = #list
  local size = SLICE - SLICE % step
  for i = 1, n, size do
    local r = call_(cmd, key, unpack(list, i, min(i + size - 1, n)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- byIndex runs cmd (HMGET, ZMSCORE) on key with the values of list, SLICE
-- at a time, and returns the replies placed by index (an absent one is
-- false; ipairs would stop at it).
local function byIndex(cmd, key, list)
  local out = {}
  local n = #list
  for i = 1, n, SLICE do
    local j = min(i + SLICE - 1, n)
    local r = call_(cmd, key, unpack(list, i, j))
    for k = 1, j - i + 1 do out[i + k - 1] = r[k] end
  end
  return out
end

local p, m, d, l = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, nowText = tonumber(ARGV[1]), ARGV[2]
-- the dedupe window (ms) and the per-profile limits of custom traits,
-- remembered messageIds and linked ids: written into this line by the sink
-- that loads the script (sink.New), so that no call carries them
local window, maxTraits, maxDedupe, maxLinks = 86400000, 256, 10000, 100 -- limits
local mode, anon = ARGV[3], ARGV[4]

-- who owns this update: decided here, in the slot of the key it concerns
if mode == 'a' then
  local owner = call_('GET', l)
  if owner then return {1, 0, 0, 0, 0, 0, 0, 0, owner} end
elseif mode == 'r' then
  if call_('HGET', l, anon) ~= 'f' then return {2, 0, 0, 0, 0, 0, 0, 0, ''} end
elseif mode == 'f' then
  if call_('HGET', l, anon) == 'f' then return {3, 0, 0, 0, 0, 0, 0, 0, ''} end
end

-- locate the sections of ARGV
-- the sizes come in one argument, three bytes each, read with one
-- string.byte: an argument and a tonumber apiece cost Redis more
local z = {byte(ARGV[5], 1, 36)}
local nf = (z[1] * 256 + z[2]) * 256 + z[3]
local ntr = (z[4] * 256 + z[5]) * 256 + z[6]
local ns = (z[7] * 256 + z[8]) * 256 + z[9]
local nc = (z[10] * 256 + z[11]) * 256 + z[12]
local fastIn = z[15] == 1
local launchesIn = (z[16] * 256 + z[17]) * 256 + z[18]
local visitsIn = (z[19] * 256 + z[20]) * 256 + z[21]
local nmid = (z[22] * 256 + z[23]) * 256 + z[24]
local np = (z[25] * 256 + z[26]) * 256 + z[27]
local nl = (z[28] * 256 + z[29]) * 256 + z[30]
local nmk = (z[31] * 256 + z[32]) * 256 + z[33]
local npk = (z[34] * 256 + z[35]) * 256 + z[36]
local si = 6                 -- seen: 6 values
local srci = si + 6          -- sources: (lowest, highest offset) each
local pos = srci + 2 * ns    -- the counts' channels, sources and offsets, in one
local mid0 = pos + 1         -- messageIds, by count
local pi = mid0 + nmid       -- (score, messageId) pairs
local li = pi + 2 * np       -- anonymous ids to link
local mk = li + nl           -- meta fields to read
local pk = mk + nmk          -- profile fields to read
local vi0 = pk + npk         -- field (value, time) pairs
local fo = vi0 + 2 * nf      -- fold section (mode 'f')
local foldL, foldV = 0, 0
if mode == 'f' then foldL, foldV = tonumber(ARGV[fo]), tonumber(ARGV[fo + 1]) end

-- readLong reads HMGET key, the fixed fields, then ARGV[a .. a + n - 1],
-- in slices (the short list of the common case goes straight from ARGV:
-- no table to build)
local function readLong(key, fixed, a, n)
  local list = {}
  for k = 1, #fixed do list[k] = fixed[k] end
  for k = 0, n - 1 do list[#list + 1] = ARGV[a + k] end
  return byIndex('HMGET', key, list)
end

-- an update with nothing to merge (the fold of an anonymous id that had
-- no history of its own: a device id that came with its user id) only
-- completes the link
local fCh = ARGV[si + 2]
local has = nf > 0 or fCh ~= '' or nc > 0 or foldL > 0 or foldV > 0
if mode == 'f' and not has and tonumber(ARGV[fo + 2]) == 0 and tonumber(ARGV[fo + 3]) == 0 then
  if call_('HGET', l, anon) == 'r' then
    local lp = tonumber(call_('HGET', m, 'lp') or '0')
    if lp > 0 then call_('HSET', m, 'lp', lp - 1) end
  end
  call_('HSET', l, anon, 'f')
  return {0, 0, 0, 0, 0, 0, 0, 0, ''}
end

-- one read of each hash
local mbase = 4 + nf         -- the watermarks' place in mv
local mv, pv
if nmk <= SLICE then
  mv = call_('HMGET', m, 'fs', 'ls', 'nt', 'lp', unpack(ARGV, mk, mk + nmk - 1))
else
  mv = readLong(m, {'fs', 'ls', 'nt', 'lp'}, mk, nmk)
end
if npk <= SLICE then
  pv = call_('HMGET', p, 'created_at', 'first_seen_channel', 'last_seen_channel', 'app_launches', 'web_visits',
    unpack(ARGV, pk, pk + npk - 1))
else
  pv = readLong(p, {'created_at', 'first_seen_channel', 'last_seen_channel', 'app_launches', 'web_visits'}, pk, npk)
end

local exists = pv[1] and true or false
local created = (not exists) and has
local changed = created
-- the fields to write, in tables made with room for a dozen fields each
-- (a table that grows is copied at every power of two)
local pset = {nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
  nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}
local mset = {nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
  nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}
-- their lengths, kept here: # on a table is a search for its border
local pn, mn = 0, 0

-- fields: last writer wins by event time, ties to the greater value
local vi = 6
local newTraits, evicted = 0, 0
local tS, tN, cS, cN = nil, nil, nil, nil
for k = 0, nf - 1 do
  local value, tText = ARGV[vi0 + 2 * k], ARGV[vi0 + 2 * k + 1]
  local name = ARGV[pk + vi - 6]
  -- the fields of one event share its time, and so do the times stored
  -- by one event: each distinct time is converted once (tonumber is
  -- strtod, dear for 13 digits); equal strings are one interned string
  if tText ~= tS then tS, tN = tText, tonumber(tText) end
  local t = tN
  local cur
  local coord = name == 'latitude'
  if coord then
    if pv[vi] then cur = pv[vi] .. ',' .. (pv[vi + 1] or '') end
    vi = vi + 2
  else
    cur = pv[vi]
    vi = vi + 1
  end
  local curS, curT = mv[5 + k], nil
  if curS then
    if curS ~= cS then cS, cN = curS, tonumber(curS) end
    curT = cN
  end
  if (not curT) or t > curT or (t == curT and gt(value, cur or '')) then
    mset[mn + 1], mset[mn + 2], mn = ARGV[mk + k], tText, mn + 2
    if not curT and k >= ntr then newTraits = newTraits + 1 end
    if value ~= cur then
      changed = true
      if coord then
        local comma = find(value, ',', 1, true)
        pset[pn + 1], pset[pn + 2], pn = 'latitude', sub(value, 1, comma - 1), pn + 2
        pset[pn + 1], pset[pn + 2], pn = 'longitude', sub(value, comma + 1), pn + 2
      else
        pset[pn + 1], pset[pn + 2], pn = name, value, pn + 2
      end
    end
  end
end

if newTraits > 0 then
  local nt = tonumber(mv[3] or '0') + newTraits
  if nt > maxTraits then
    -- keep the max_traits smallest keys in byte order (rare: read them all)
    local keys, inHash = {}, {}
    for _, f in ipairs(call_('HKEYS', p)) do
      if sub(f, 1, 6) == 'trait.' then
        keys[#keys + 1] = f
        inHash[f] = true
      end
    end
    for k = 1, #pset, 2 do
      if sub(pset[k], 1, 6) == 'trait.' and not inHash[pset[k]] then
        keys[#keys + 1] = pset[k]
      end
    end
    table.sort(keys, function(a, b) return gt(b, a) end)
    local evict = {}
    local gone = {}
    evicted = #keys - maxTraits
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
    pset, pn = keep, #keep
    local keepm, goneT = {}, {}
    for k = 1, #mset, 2 do
      if not evict[sub(mset[k], 3)] then
        keepm[#keepm + 1] = mset[k]
        keepm[#keepm + 1] = mset[k + 1]
      end
    end
    mset, mn = keepm, #keepm
    for _, f in ipairs(gone) do goneT[#goneT + 1] = 't:' .. f end
    if #gone > 0 then
      call('HDEL', p, gone, 1)
      call('HDEL', m, goneT, 1)
    end
    nt = maxTraits
  end
  mset[mn + 1], mset[mn + 2], mn = 'nt', nt, mn + 2
end

-- first and last seen: earliest and latest launch or visit; t and c are
-- the update's and the stored time as numbers (c false: none stored)
local function see(metaKey, ms, field, text, chField, ch, t, c, curCh, earlier)
  local wins
  if not c then wins = true elseif earlier then wins = t < c else wins = t > c end
  if wins or (t == c and gt(ch, curCh or '')) then
    mset[mn + 1], mset[mn + 2], mn = metaKey, ms, mn + 2
    pset[pn + 1], pset[pn + 2], pn = field, text, pn + 2
    pset[pn + 1], pset[pn + 2], pn = chField, ch, pn + 2
    changed = true
  end
end
if fCh ~= '' then
  local fs, ls = ARGV[si], ARGV[si + 3]
  local t, c = tonumber(fs), mv[1] and tonumber(mv[1])
  see('fs', fs, 'first_seen', ARGV[si + 1], 'first_seen_channel', fCh, t, c, pv[2], true)
  -- one event's update: the same time (one interned string), converted once
  if ls ~= fs then t = tonumber(ls) end
  if mv[2] ~= mv[1] then c = mv[2] and tonumber(mv[2]) end
  see('ls', ls, 'last_seen', ARGV[si + 4], 'last_seen_channel', ARGV[si + 5], t, c, pv[3], false)
end

local launches, visits, dupMsg, dupRedelivered, forgotten = 0, 0, 0, 0, 0
local dedupeAdded = false
local oldest = now - window

-- forget drops the messageIds applied at or before oldest: scores
-- -(2 * oldest + 1) to -1, and those of the earlier form up to oldest
local function forget()
  call_('ZREMRANGEBYSCORE', d, format('%.0f', -2 * oldest - 1), format('%.0f', oldest))
end

-- remember adds (score, messageId) pairs to the dedupe set
local function remember(add)
  if #add > 0 then
    call('ZADD', d, add, 2)
    dedupeAdded = true
  end
end

-- counts: each record once (offset watermark per log), each messageId once
-- per window
if nc > 0 then
  local wm = {}
  local fast = fastIn
  for k = 1, ns do
    wm[k] = tonumber(mv[mbase + k] or '-1')
    if fast and tonumber(ARGV[srci + 2 * k - 2]) <= wm[k] then fast = false end
  end
  -- one messageId (most calls: a profile's one record in the batch) is
  -- added where it is absent, in one call: absent means not known. Present
  -- (known, or applied before the window) sends the update down the slow
  -- path, which reads its score; the ZADD changed nothing then. With more,
  -- a ZADD NX could not tell which it added, so their scores are read first.
  -- known: the (score, messageId) pairs, by their place among the pairs,
  -- whose messageId was applied within the window (nil: none)
  local known
  if fast and np == 1 then
    fast = call_('ZADD', d, 'NX', ARGV[pi], ARGV[pi + 1]) == 1
  elseif fast and np > 0 then
    local scores = call_('ZMSCORE', d, unpack(ARGV, mid0, mid0 + nmid - 1))
    for k = 1, nmid do
      if scores[k] and applied(tonumber(scores[k])) > oldest then
        -- a known messageId among records that are all new (a
        -- producer's copy of a record of an earlier batch): that record
        -- counts nothing, the rest as usual. Which pair is whose: the
        -- pairs follow the counts that have a messageId, in order.
        known = {}
        local j = 0
        for c = 1, nmid do
          if ARGV[mid0 + c - 1] ~= '' then
            j = j + 1
            if scores[c] and applied(tonumber(scores[c])) > oldest then known[j] = true end
          end
        end
        break
      end
    end
  end
  if fast then
    -- the common case: every record is new, and so is every messageId;
    -- the counts that repeat an earlier count's messageId (channel "d")
    -- count nothing
    launches, visits = launchesIn, visitsIn
    dupMsg = nc - launchesIn - visitsIn
    if known then
      -- a known messageId's record counts nothing, and its score stays
      -- (the window runs from the first application); a pair's score is
      -- odd for a launch (see applied)
      local add, n = {}, 0
      for j = 1, np do
        local sc = ARGV[pi + 2 * j - 2]
        if known[j] then
          dupMsg = dupMsg + 1
          if byte(sc, -1) % 2 == 1 then launches = launches - 1 else visits = visits - 1 end
        else
          add[n + 1], add[n + 2], n = sc, ARGV[pi + 2 * j - 1], n + 2
        end
      end
      remember(add)
    elseif np > 1 then
      call_('ZADD', d, unpack(ARGV, pi, pi + 2 * np - 1))
    end
    if np > 0 then dedupeAdded = true end
    for k = 1, ns do
      mset[mn + 1], mset[mn + 2], mn = ARGV[mk + nf + k - 1], ARGV[srci + 2 * k - 1], mn + 2
    end
  else
    -- records above the watermarks, and their messageIds
    local moved, fresh, mids, isLaunch = {}, {}, {}, {}
    local k = 0
    for ch, srcText, offText in gmatch(ARGV[pos], '(%a)(%d+) (%d+)') do
      local src, off = tonumber(srcText), tonumber(offText)
      isLaunch[k] = ch == 'a'
      if off <= wm[src] then
        dupRedelivered = dupRedelivered + 1
      else
        wm[src] = off
        moved[src] = offText
        if ch == 'd' then
          dupMsg = dupMsg + 1
        else
          fresh[#fresh + 1] = k
          if nmid > 0 and ARGV[mid0 + k] ~= '' then mids[#mids + 1] = ARGV[mid0 + k] end
        end
      end
      k = k + 1
    end
    local known = {}
    if #mids > 0 then
      local scores = byIndex('ZMSCORE', d, mids)
      for k = 1, #mids do
        if scores[k] and applied(tonumber(scores[k])) > oldest then known[mids[k]] = true end
      end
    end
    local add = {}
    local launchScore, visitScore = format('%.0f', -2 * now - 1), format('%.0f', -2 * now)
    for _, k in ipairs(fresh) do
      local mid = nmid > 0 and ARGV[mid0 + k] or ''
      local launch = isLaunch[k]
      if mid ~= '' and known[mid] then
        dupMsg = dupMsg + 1
      else
        if mid ~= '' then
          known[mid] = true
          add[#add + 1] = launch and launchScore or visitScore
          add[#add + 1] = mid
        end
        if launch then launches = launches + 1 else visits = visits + 1 end
      end
    end
    for k, offText in pairs(moved) do
      mset[mn + 1], mset[mn + 2], mn = ARGV[mk + nf + k - 1], offText, mn + 2
    end
    remember(add)
  end
end

-- the fold: an anonymous id's frozen history joins its user, once
local lp = tonumber(mv[4] or '0')
if mode == 'f' then
  local nm = tonumber(ARGV[fo + 2])
  local mi = fo + 3
  local nw = tonumber(ARGV[mi + 2 * nm])
  local wi = mi + 2 * nm + 1
  if nm > 0 and window > 0 then
    local ids = {}
    for k = 0, nm - 1 do ids[#ids + 1] = ARGV[mi + 2 * k] end
    local cur = byIndex('ZMSCORE', d, ids)
    local add = {}
    for k = 0, nm - 1 do
      local mid, scText = ARGV[mi + 2 * k], ARGV[mi + 2 * k + 1]
      local sc, launch = applied(tonumber(scText))
      if sc > oldest then
        local c = cur[k + 1] and applied(tonumber(cur[k + 1]))
        if c and c > oldest then
          -- counted under the anonymous id and again under the user: once
          if launch then foldL = foldL - 1 else foldV = foldV - 1 end
          dupMsg = dupMsg + 1
        end
        if not (c and c > oldest) or sc < c then -- the window runs from its first application
          add[#add + 1] = scText
          add[#add + 1] = mid
        end
      end
    end
    remember(add)
  end
  launches, visits = launches + foldL, visits + foldV
  -- the id's later records are judged by what it had counted
  for k = 0, nw - 1 do
    mset[mn + 1], mset[mn + 2], mn = 'r:' .. ARGV[wi + 2 * k] .. '|' .. anon, ARGV[wi + 2 * k + 1], mn + 2
  end
  if call_('HGET', l, anon) == 'r' and lp > 0 then
    lp = lp - 1
    mset[mn + 1], mset[mn + 2], mn = 'lp', lp, mn + 2
  end
  call_('HSET', l, anon, 'f')
end

if dedupeAdded then
  call_('PEXPIRE', d, window)
  -- forget what left the window: often enough to bound memory, rarely
  -- enough to stay cheap (the window check above uses the scores anyway)
  if now % 16 == 0 then forget() end
  local n = call_('ZCARD', d)
  if n > maxDedupe then
    forget()
    n = call_('ZCARD', d)
    if n > maxDedupe then
      -- the oldest: scores of the earlier form from the lowest up, then
      -- the rest from the highest down
      local x = n - maxDedupe
      local early = call_('ZCOUNT', d, '(0', '+inf')
      local e = min(early, x)
      if e > 0 then call_('ZREMRANGEBYRANK', d, n - early, n - early + e - 1) end
      if x > e then call_('ZPOPMAX', d, x - e) end
      forgotten = x
    end
  end
end

-- links: reserve the anonymous ids this user's events carry, within the
-- limit, and hand back the pending ones so that the caller claims them.
-- On one node (KEYS[5..] given) an id that is nobody's and has no history
-- (a device id that only ever came with its user id: most links) is
-- linked here and now, state 'n': the claim (link key set) and the fold
-- (nothing to fold; 'f' in the links hash) in one atomic step, which is
-- what steps 2 and 3 of link.go would leave.
local out = {0, 0, 0, 0, 0, 0, 0, 0, ''}
if mode == 'u' and (nl > 0 or lp > 0) then
  local lp0 = lp
  local listed = lp0 > 0 and {} or nil
  if nl > 0 then
    local cur
    if nl <= SLICE then
      cur = call_('HMGET', l, unpack(ARGV, li, li + nl - 1))
    else
      local ids = {}
      for k = 1, nl do ids[k] = ARGV[li + k - 1] end
      cur = byIndex('HMGET', l, ids)
    end
    local count
    for k = 1, nl do
      local a = ARGV[li + k - 1]
      if listed then listed[a] = true end
      local st = cur[k]
      if not st then
        count = count or call_('HLEN', l)
        local ak = 5 * k          -- a's keys, when given (one node)
        if count >= maxLinks then
          st = 'l'
        elseif KEYS[ak] and not call_('GET', KEYS[ak])
            and call_('EXISTS', KEYS[ak + 1], KEYS[ak + 2], KEYS[ak + 3], KEYS[ak + 4]) == 0 then
          -- every key on one node, and a has no history: claim and fold
          -- are one step, in this script
          call_('SET', KEYS[ak], anon)
          call_('HSET', l, a, 'f')
          count = count + 1
          st = 'n'
        else
          call_('HSET', l, a, 'r')
          count = count + 1
          lp = lp + 1
          st = 'r'
        end
      end
      out[#out + 1] = a
      out[#out + 1] = st
    end
  end
  if lp0 > 0 then
    -- reservations a crash left pending: any event of the user completes them
    local all = call_('HGETALL', l)
    for k = 1, #all, 2 do
      if all[k + 1] == 'r' and not listed[all[k]] then
        out[#out + 1] = all[k]
        out[#out + 1] = 'r'
      end
    end
  end
  if lp ~= lp0 then
    mset[mn + 1], mset[mn + 2], mn = 'lp', lp, mn + 2
  end
end

if exists or has then
  if created then
    pset[pn + 1], pset[pn + 2], pn = 'created_at', nowText, pn + 2
  end
  if created or launches ~= 0 then
    pset[pn + 1], pset[pn + 2], pn = 'app_launches', tonumber(pv[4] or '0') + launches, pn + 2
  end
  if created or visits ~= 0 then
    pset[pn + 1], pset[pn + 2], pn = 'web_visits', tonumber(pv[5] or '0') + visits, pn + 2
  end
  if launches ~= 0 or visits ~= 0 then changed = true end
  if changed then
    pset[pn + 1], pset[pn + 2], pn = 'updated_at', nowText, pn + 2
  end
  -- straight from the list when it is short (call builds a table)
  if pn > SLICE then call('HSET', p, pset, 2) elseif pn > 0 then call_('HSET', p, unpack(pset, 1, pn)) end
end
if mn > SLICE then call('HSET', m, mset, 2) elseif mn > 0 then call_('HSET', m, unpack(mset, 1, mn)) end
-- the common answer is one integer, created (1) or not (0): applied, every
-- launch and visit sent counted (the caller knows how many it sent),
-- nothing forgotten, evicted or linked
if #out == 9 and mode ~= 'f' and dupMsg == 0 and dupRedelivered == 0 and forgotten == 0 and evicted == 0 then
  return created and 1 or 0
end
out[2], out[3], out[4], out[5], out[6], out[7], out[8] = created and 1 or 0, launches, visits, dupMsg, dupRedelivered, forgotten, evicted
return out
