-- profiled: claim anonymous id A for user U, in A's slot (step 2 of a link).
--
-- KEYS[1] link key       <prefix>profile:{anon:A}:link   (a string: U)
-- KEYS[2] profile hash   <prefix>profile:{anon:A}
-- KEYS[3] meta hash      <prefix>profile:{anon:A}:m
-- KEYS[4] dedupe zset    <prefix>profile:{anon:A}:d
-- KEYS[5] snapshot hash  <prefix>profile:{anon:A}:snap
-- ARGV[1] U
--
-- The first claim wins and never changes. Claiming freezes A: from then on
-- apply.lua refuses A's updates (they go to U), and A's profile hash is
-- renamed to the snapshot key, so that no reader sees A's history in two
-- profiles: it is out of the profile key space before it joins U.
--
-- Returns {'conflict', owner} when A belongs to another user, else
-- {'mine', snapshot hash, meta hash, dedupe (member, score)...}: A's frozen
-- history, empty once finish.lua removed it.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  return {'conflict', owner}
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RENAME', KEYS[2], KEYS[5])
  end
end
return {'mine', redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[3]),
  redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')}
