-- profiled: give back user U's reservation of anonymous id A, in U's slot,
-- after A's claim found another owner (step 3 of a link that lost).
--
-- KEYS[1] links hash <prefix>profile:{U}:links, KEYS[2] meta hash of U
-- ARGV[1] A
if redis.call('HGET', KEYS[1], ARGV[1]) == 'r' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  local lp = tonumber(redis.call('HGET', KEYS[2], 'lp') or '0')
  if lp > 0 then redis.call('HSET', KEYS[2], 'lp', lp - 1) end
end
return 1
