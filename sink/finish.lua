-- profiled: drop anonymous id A's frozen history once it is in its user's
-- profile, in A's slot (step 4 of a link). Only the link stays.
--
-- KEYS[1] link key, KEYS[2] snapshot hash, KEYS[3] meta hash,
-- KEYS[4] dedupe zset (all of A)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
return 1
