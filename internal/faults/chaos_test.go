package faults_test

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// chaos: the faults of the other scenarios at once, in random order, while
// three instances share the stream: instances killed and stopped while
// Redis is slow, paused or restarting, so that a writer that lost its
// partitions may still be writing when the next owner starts.
func chaos(s *scenario) {
	px := newSlowProxy(s.t, s.redis.addr())
	f := s.running(3, "redis://"+px.addr()+"/0", "PROFILED_REDIS_TIMEOUT=700ms", "PROFILED_BATCH_SIZE=400")
	counts := map[string]int{}
	for _, m := range s.marks(12, 0.05, 0.9) {
		s.waitProgress(m, 3*time.Minute)
		s.jitter(500 * time.Millisecond)
		switch s.rng.IntN(5) {
		case 0:
			if rs := f.running(); len(rs) > 0 {
				rs[s.rng.IntN(len(rs))].kill9(s.t)
			}
			f.start(s.t)
			counts["kill -9"]++
		case 1:
			if rs := f.running(); len(rs) > 0 {
				i := rs[s.rng.IntN(len(rs))]
				if code, _, err := i.term(shutdownTimeout + 5*time.Second); err != nil || code != 0 {
					s.t.Errorf("instance %d: exit %d after SIGTERM, %v:\n%s", i.n, code, err, i.logTail(15))
				}
				counts["SIGTERM"]++
			}
			f.start(s.t)
		case 2:
			px.setDelay(500*time.Millisecond + time.Duration(s.rng.IntN(800))*time.Millisecond)
			// a rebalance while the writers hang on Redis
			f.start(s.t)
			s.jitter(3 * time.Second)
			px.setDelay(0)
			counts["slow spell with a join"]++
		case 3:
			rdb := redis.NewClient(&redis.Options{Addr: s.redis.addr()})
			_ = rdb.Do(context.Background(), "CLIENT", "PAUSE", 2500, "ALL").Err()
			rdb.Close()
			if rs := f.running(); len(rs) > 1 {
				rs[s.rng.IntN(len(rs))].kill9(s.t)
			}
			time.Sleep(2500 * time.Millisecond) // the rest of the pause
			counts["pause with a kill"]++
		default:
			s.redis.crash(s.t)
			s.jitter(2 * time.Second)
			s.redis.launch(s.t)
			counts["Redis kill -9"]++
		}
	}
	for _, k := range sortedKeys(counts) {
		s.note("%d× %s", counts[k], k)
	}
	s.drain(drainTime)
	s.check("chaos")
}
