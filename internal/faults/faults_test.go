package faults_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
)

func TestMain(m *testing.M) {
	// the suite's own Redis clients dial servers it has just killed; their
	// complaints are expected and would bury the report
	redis.SetLogger(quiet{})
	code := m.Run()
	testenv.RemoveBuilds()
	totals.Lock()
	n, events, lost, dup := totals.scenarios, totals.events, totals.lost, totals.dup
	totals.Unlock()
	if n > 0 {
		fmt.Printf("%s: %d scenarios, %d events, %d lost, %d double-counted\n", suiteName, n, events, lost, dup)
	}
	os.Exit(code)
}

// suiteName starts the last line: "faults", or "cluster" when TestCluster
// ran (make test-cluster).
var suiteName = "faults"

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// drainTime bounds how long a scenario may take to commit everything once
// its faults are over.
const drainTime = 5 * time.Minute

// TestFaults runs every scenario, each from a clean topic, group,
// dead-letter topic and Redis, and checks the end state against the model.
func TestFaults(t *testing.T) {
	if testing.Short() || os.Getenv("PROFILED_FAULTS") != "1" {
		t.Skip("the fault suite runs with PROFILED_FAULTS=1 (make test-faults)")
	}
	su := &suite{bin: testenv.Profiled(t), seed: uint64(time.Now().UnixNano() % 1e6), n: 200000}
	if v, err := strconv.ParseUint(os.Getenv("PROFILED_FAULTS_SEED"), 10, 64); err == nil {
		su.seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("PROFILED_FAULTS_EVENTS")); err == nil && v > 0 {
		su.n = v
	}
	defer watchdog(t)()
	b := su.useBroker(t)
	fmt.Printf("faults: seed %d (PROFILED_FAULTS_SEED), %d records per scenario, broker %s\n", su.seed, su.n, b.addr)

	for i, sc := range []struct {
		name string
		run  func(*scenario)
	}{
		{"kill-9", killNine},
		{"rebalance", rebalance},
		{"redis-restart", redisRestart},
		{"broker-restart", brokerRestart},
		{"slow-redis", slowRedis},
		{"replay", replay},
		{"chaos", chaos},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s := su.newScenario(t, sc.name, i)
			defer s.report()
			defer func() {
				if !s.checked && s.fleet != nil { // a fault step failed: still count what was lost
					s.drain(time.Minute)
					s.check("after the failure")
				}
			}()
			sc.run(s)
		})
	}
}

// killNine: three instances; at random moments one of them (now and then
// two at once) is killed with SIGKILL and started again.
func killNine(s *scenario) {
	f := s.running(3, s.redis.url())
	kills := 0
	for _, m := range s.marks(8, 0.05, 0.85) {
		s.waitProgress(m, 3*time.Minute)
		s.jitter(time.Second)
		rs := f.running()
		if len(rs) == 0 {
			s.t.Fatalf("no instance left to kill%s", s.unexpectedText())
		}
		s.rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		n := 1
		if len(rs) > 1 && s.rng.IntN(4) == 0 {
			n = 2
		}
		for _, i := range rs[:n] {
			i.kill9(s.t)
			kills++
		}
		if s.rng.IntN(2) == 0 {
			s.jitter(2 * time.Second) // restarted at once, or a little later
		}
		for range n {
			f.start(s.t)
		}
	}
	s.note("%d kills", kills)
	s.drain(drainTime)
	s.check("kill-9")
}

// rebalance: instances join and leave mid-stream. The leaving ones get
// SIGTERM and must exit 0 within the grace period, having committed what
// they wrote; one of them is killed during its shutdown, as an orchestrator
// does when the grace period runs out.
func rebalance(s *scenario) {
	f := s.launch(s.redis.url(), "PROFILED_BATCH_SIZE=250")
	f.start(s.t)
	steps := []string{"add", "add", "term", "add", "add", "term-kill", "term", "add", "term"}
	added, stopped := 1, 0
	for k, m := range s.marks(len(steps), 0.05, 0.85) {
		s.waitProgress(m, 3*time.Minute)
		s.jitter(time.Second)
		if steps[k] == "add" {
			f.start(s.t)
			added++
			continue
		}
		rs := f.running()
		if len(rs) == 0 {
			s.t.Fatalf("no instance left to stop%s", s.unexpectedText())
		}
		i := rs[s.rng.IntN(len(rs))]
		stopped++
		if steps[k] == "term-kill" {
			if !i.up(30 * time.Second) {
				s.t.Fatalf("instance %d does not serve /livez", i.n)
			}
			_ = i.cmd.Process.Signal(syscall.SIGTERM)
			s.jitter(time.Second) // into the shutdown
			i.kill9(s.t)
			continue
		}
		code, took, err := i.term(shutdownTimeout + 5*time.Second)
		switch {
		case err != nil:
			s.t.Error(err)
		case code != 0:
			s.t.Errorf("instance %d exited %d after SIGTERM:\n%s", i.n, code, i.logTail(15))
		case took > shutdownTimeout:
			s.t.Errorf("instance %d took %s to stop, grace period %s", i.n, took, shutdownTimeout)
		}
	}
	s.note("%d started, %d stopped by SIGTERM (1 killed while stopping)", added, stopped)
	s.drain(drainTime)
	s.check("rebalance")
}

// redisRestart: Redis is killed (kill -9) and restarted on its append-only
// file twice, and paused beyond the client's timeouts once.
func redisRestart(s *scenario) {
	s.running(2, s.redis.url(), "PROFILED_REDIS_TIMEOUT=1s")
	s.atMarks(3, 0.1, 0.8, func(k int) {
		if k == 1 {
			pause := 3*time.Second + time.Duration(s.rng.IntN(2000))*time.Millisecond
			rdb := redis.NewClient(&redis.Options{Addr: s.redis.addr()})
			err := rdb.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err()
			rdb.Close()
			if err != nil {
				s.t.Fatalf("CLIENT PAUSE: %v", err)
			}
			s.note("paused %.1fs", pause.Seconds())
			time.Sleep(pause) // the stall itself
			return
		}
		s.redis.crash(s.t)
		down := time.Second + time.Duration(s.rng.IntN(2000))*time.Millisecond
		time.Sleep(down) // Redis stays down a while
		s.redis.launch(s.t)
	})
	s.note("2 Redis kills and restarts")
	s.drain(drainTime)
	s.check("redis")
}

// brokerRestart: the Kafka broker is stopped and started again (same data)
// twice mid-stream.
func brokerRestart(s *scenario) {
	s.running(2, s.redis.url(), "PROFILED_BATCH_SIZE=500")
	s.atMarks(2, 0.15, 0.7, func(int) { s.su.broker.restart(s.t) })
	s.note("2 broker restarts")
	s.drain(drainTime)
	s.check("broker")
}

// slowRedis: for spells of a few seconds Redis answers slower than the
// client's read timeout (a proxy holds each chunk of replies back): the
// commands run, the replies come too late, and the pipelines are retried.
func slowRedis(s *scenario) {
	px := newSlowProxy(s.t, s.redis.addr())
	s.running(2, "redis://"+px.addr()+"/0", "PROFILED_REDIS_TIMEOUT=500ms")
	spells := s.marks(3, 0.1, 0.75)
	for _, m := range spells {
		s.waitProgress(m, 3*time.Minute)
		s.jitter(time.Second)
		// every chunk of replies comes later than the 500 ms timeout
		px.setDelay(550*time.Millisecond + time.Duration(s.rng.IntN(650))*time.Millisecond)
		time.Sleep(3*time.Second + time.Duration(s.rng.IntN(3000))*time.Millisecond) // the slow spell
		px.setDelay(0)
	}
	if !testenv.Poll(drainTime, 200*time.Millisecond, s.caughtUp) {
		s.t.Error("the group did not catch up after the slow spells")
	}
	errs := s.metric("profiled_redis_errors_total")
	if errs == 0 {
		s.t.Error("no Redis write timed out: the slow spells did not bite")
	}
	s.note("%d slow spells, %.0f Redis writes retried", len(spells), errs)
	s.drain(drainTime)
	s.check("slow-redis")
}

// replay: the stream is consumed to the end, then replayed from offset
// zero by a fresh group against the same Redis: nothing may count twice.
func replay(s *scenario) {
	s.running(2, s.redis.url())
	s.drain(drainTime)
	s.check("first pass")
	s.group += "-replay"
	s.running(2, s.redis.url())
	s.drain(drainTime)
	s.check("replay")
	s.note("replayed into a fresh group")
}
