package faults_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
)

// The cluster suite (make test-cluster, PROFILED_CLUSTER=1): the fault
// suite's stream, model and checks, against a real 3-master Redis Cluster
// and a real Sentinel set-up, with failovers and resharding under load and
// instances joining and leaving meanwhile. Its last line is
//
//	cluster: <n> scenarios, <m> events, <lost> lost, <dup> double-counted
//
// Its own ports (none of the fault suite's): broker 19892 and 19893
// (PROFILED_CLUSTER_KAFKA_PORT), Cluster 17200-17205
// (PROFILED_CLUSTER_REDIS_PORT), Sentinel set-up 17400-17405
// (PROFILED_CLUSTER_SENTINEL_PORT), single servers from 17420
// (PROFILED_CLUSTER_SERVER_PORT).

type clusterSuite struct {
	cluster  *redisCluster
	sentinel *redisSentinel
	pace     time.Duration // how long the stream lasts under the faults
	// PROFILED_REDIS_MIN_REPLICAS of the instances: 1, or what
	// PROFILED_CLUSTER_MIN_REPLICAS says (0 shows what a failover does
	// without WAIT)
	minReplicas string
}

// clusterPort returns the port the variable name sets, or def; to is the
// fault suite's variable that passes it on to startBroker or startRedis.
func clusterPort(t *testing.T, name string, def int, to string) int {
	p, err := strconv.Atoi(os.Getenv(name))
	if err != nil || p <= 0 {
		p = def
	}
	if to != "" {
		t.Setenv(to, strconv.Itoa(p))
	}
	return p
}

// TestCluster runs the cluster scenarios, each from a clean topic, group,
// dead-letter topic and an emptied Cluster or Sentinel set-up.
func TestCluster(t *testing.T) {
	if testing.Short() || os.Getenv("PROFILED_CLUSTER") != "1" {
		t.Skip("the cluster suite runs with PROFILED_CLUSTER=1 (make test-cluster)")
	}
	suiteName = "cluster"
	clusterPort(t, "PROFILED_CLUSTER_KAFKA_PORT", 19892, "PROFILED_FAULTS_KAFKA_PORT")
	clusterPort(t, "PROFILED_CLUSTER_SERVER_PORT", 17420, "PROFILED_FAULTS_REDIS_PORT")
	su := &suite{bin: testenv.Profiled(t), seed: uint64(time.Now().UnixNano() % 1e6), n: 50000}
	if v, err := strconv.ParseUint(os.Getenv("PROFILED_CLUSTER_SEED"), 10, 64); err == nil {
		su.seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("PROFILED_CLUSTER_EVENTS")); err == nil && v > 0 {
		su.n = v
	}
	// without WAIT a failover may drop writes profiled has committed: the
	// scenarios would report them lost, and this says why
	help, _ := exec.Command(su.bin, "--help").CombinedOutput()
	if !strings.Contains(string(help), "min-replicas") {
		t.Errorf("%s does not read PROFILED_REDIS_MIN_REPLICAS (not in its --help): the failovers run without WAIT", su.bin)
	}
	defer watchdog(t)()
	b := su.useBroker(t)
	cs := &clusterSuite{
		cluster:  startCluster(t, clusterPort(t, "PROFILED_CLUSTER_REDIS_PORT", 17200, "")),
		sentinel: startSentinel(t, clusterPort(t, "PROFILED_CLUSTER_SENTINEL_PORT", 17400, "")),
	}
	cs.pace, cs.minReplicas = 40*time.Second, "1"
	if v := os.Getenv("PROFILED_CLUSTER_MIN_REPLICAS"); v != "" {
		cs.minReplicas = v
	}
	if d, err := time.ParseDuration(os.Getenv("PROFILED_CLUSTER_PACE")); err == nil && d > 0 {
		cs.pace = d
	}
	fmt.Printf("cluster: seed %d (PROFILED_CLUSTER_SEED), %d records per scenario (PROFILED_CLUSTER_EVENTS), broker %s, cluster %s, sentinels %s\n",
		su.seed, su.n, b.addr, strings.Join(cs.cluster.addrs, ","), strings.Join(cs.sentinel.sentinels, ","))

	for i, sc := range []struct {
		name string
		run  func(*scenario)
	}{
		{"same-profiles", cs.sameProfiles},
		{"cluster-failover", cs.clusterFailover},
		{"cluster-reshard", cs.clusterReshard},
		{"sentinel-failover", cs.sentinelFailover},
	} {
		t.Run(sc.name, func(t *testing.T) {
			su.produceLater = sc.name != "same-profiles"
			s := su.newScenario(t, sc.name, i)
			defer s.report()
			sc.run(s)
		})
	}
}

// clusterEnv makes profiled use the Cluster and wait for one replica of
// every master it wrote to before it commits.
func (cs *clusterSuite) clusterEnv() []string {
	return []string{"PROFILED_REDIS_CLUSTER_ADDRS=" + strings.Join(cs.cluster.addrs, ","), "PROFILED_REDIS_MIN_REPLICAS=" + cs.minReplicas}
}

func (cs *clusterSuite) sentinelEnv() []string {
	return []string{"PROFILED_REDIS_SENTINEL_ADDRS=" + strings.Join(cs.sentinel.sentinels, ","),
		"PROFILED_REDIS_SENTINEL_MASTER=" + cs.sentinel.master, "PROFILED_REDIS_MIN_REPLICAS=" + cs.minReplicas}
}

// underLoad produces the stream over about pace while it starts the first
// instances and runs the steps at random moments: "join" starts an
// instance, "leave" stops one with SIGTERM once the Redis set-up is healthy
// (it must then exit 0 within its grace period), "kill-9" kills one; any
// other step is a fault from faults. An instance is stopped only while
// another runs. It notes the steps and how much of the stream the group
// had committed when each fault began.
func (s *scenario) underLoad(f *fleet, first int, pace time.Duration, healthy func() bool, steps []string, faults map[string]func()) {
	ctx, cancel := context.WithTimeout(context.Background(), pace+3*time.Minute)
	defer cancel()
	produced := make(chan error, 1)
	go func() { produced <- producePaced(ctx, s.su.broker.addr, s.topic, s.st.recs, pace) }()
	for range first {
		f.start(s.t)
	}
	counts := map[string]int{}
	var at []string
	for k, m := range s.marks(len(steps), 0.05, 0.8) {
		s.waitShare(m, 3*time.Minute)
		s.jitter(500 * time.Millisecond)
		name := steps[k]
		rs := f.running()
		switch name {
		case "join":
			f.start(s.t)
		case "leave":
			if len(rs) < 2 {
				continue
			}
			if !testenv.Poll(time.Minute, 100*time.Millisecond, healthy) {
				s.t.Fatal("the Redis set-up is not healthy a minute after the fault")
			}
			i := rs[s.rng.IntN(len(rs))]
			code, took, err := i.term(shutdownTimeout + 5*time.Second)
			switch {
			case err != nil:
				s.t.Error(err)
			case code != 0 && lostMembership(i):
				counts["SIGTERM exit 1 after losing the group during the fault"]++
			case code != 0:
				s.t.Errorf("instance %d exited %d after SIGTERM:\n%s", i.n, code, i.logTail(15))
			case took > shutdownTimeout:
				s.t.Errorf("instance %d took %s to stop, grace period %s", i.n, took, shutdownTimeout)
			}
		case "kill-9":
			if len(rs) < 2 {
				continue
			}
			rs[s.rng.IntN(len(rs))].kill9(s.t)
		default:
			at = append(at, fmt.Sprintf("%.0f%%", s.share()*100))
			faults[name]()
		}
		counts[name]++
	}
	if err := <-produced; err != nil {
		s.t.Fatalf("produce: %v", err)
	}
	for _, k := range sortedKeys(counts) {
		s.note("%d× %s", counts[k], k)
	}
	s.note("faults at %s committed", strings.Join(at, ", "))
}

// lostMembership reports whether an instance that exited non-zero after
// SIGTERM says it had lost its place in the group — during a Redis fault it
// can be removed from the group, or its generation end, while its batch
// waits for Redis — and that its records go to the next owner. Its exit
// code is then a product bug (consumer.TestShutdownBetweenGenerations
// shows one form of it), not a loss: the suite counts it in the scenario's
// line instead of failing, and the checks of the data stay strict.
func lostMembership(i *instance) bool {
	log := i.logTail(5)
	return strings.Contains(log, "will be delivered again") &&
		(strings.Contains(log, "Unknown Member ID") || strings.Contains(log, "batch not written"))
}

// share is the part of the whole stream the group has committed (the
// topic's end offsets grow while the stream is produced).
func (s *scenario) share() float64 {
	_, committed, err := s.offsets()
	if err != nil {
		return 0
	}
	var done int64
	for _, c := range committed {
		done += max(c, 0)
	}
	return float64(done) / float64(len(s.st.recs))
}

// waitShare waits until the group has committed frac of the stream.
func (s *scenario) waitShare(frac float64, d time.Duration) {
	s.t.Helper()
	if !testenv.Poll(d, 100*time.Millisecond, func() bool { return s.share() >= frac }) {
		s.t.Fatalf("no progress to %.0f%% of the stream within %s (at %.1f%%)%s", frac*100, d, s.share()*100, s.unexpectedText())
	}
}

// snapshotFrom copies the set-up's keys into the scenario's single server,
// which the checks read.
func (s *scenario) snapshotFrom(from interface {
	snapshot(*redis.Client) (int, error)
}) {
	s.t.Helper()
	rdb := s.redis.client()
	defer rdb.Close()
	n, err := from.snapshot(rdb)
	if err != nil {
		s.t.Fatalf("copy the keys to check them: %v", err)
	}
	s.t.Logf("%d keys copied to %s for the checks", n, s.redis.addr())
}

// sameProfiles: the stream through one instance on a single Redis server,
// then through three instances on the Cluster: the same profiles (but for
// created_at and updated_at) and the same link keys, both as the model says.
func (cs *clusterSuite) sameProfiles(s *scenario) {
	cs.cluster.flush(s.t)
	f := s.launch(s.redis.url())
	f.start(s.t)
	s.drain(drainTime)
	s.check("1 instance, single server")
	alone := s.redis

	s.group += "-cluster"
	s.dlq += "-cluster"
	f = s.launch("", cs.clusterEnv()...)
	for range 3 {
		f.start(s.t)
	}
	s.drain(drainTime)
	cs.cluster.waitHealthy(s.t, time.Minute, "after the run")
	s.redis = startRedis(s.t)
	s.snapshotFrom(cs.cluster)
	s.check("3 instances, Cluster")
	s.compare(alone, s.redis)
}

// compare reads two servers' profiles and links and reports every
// difference; created_at and updated_at are wall-clock times and differ.
func (s *scenario) compare(a, b *redisServer) {
	s.t.Helper()
	ca, cb := a.client(), b.client()
	defer ca.Close()
	defer cb.Close()
	pa, err := readProfiles(ca)
	if err != nil {
		s.t.Fatal(err)
	}
	pb, err := readProfiles(cb)
	if err != nil {
		s.t.Fatal(err)
	}
	var diffs []string
	for _, id := range sortedKeys(pa) {
		ha, hb := maps.Clone(pa[id]), maps.Clone(pb[id])
		for _, h := range []map[string]string{ha, hb} {
			delete(h, "created_at")
			delete(h, "updated_at")
		}
		if !reflect.DeepEqual(ha, hb) {
			diffs = append(diffs, fmt.Sprintf("profile %q: single server %v, Cluster %v", id, ha, hb))
		}
	}
	for id := range pb {
		if _, ok := pa[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("profile %q only on the Cluster", id))
		}
	}
	oa, la, err := readLinks(ca)
	if err != nil {
		s.t.Fatal(err)
	}
	ob, lb, err := readLinks(cb)
	if err != nil {
		s.t.Fatal(err)
	}
	if !reflect.DeepEqual(oa, ob) {
		diffs = append(diffs, fmt.Sprintf("the :link keys differ: %d on the single server, %d on the Cluster", len(oa), len(ob)))
	}
	if !reflect.DeepEqual(la, lb) {
		diffs = append(diffs, fmt.Sprintf("the :links keys differ: %d on the single server, %d on the Cluster", len(la), len(lb)))
	}
	if len(diffs) > 0 {
		if len(diffs) > 12 {
			diffs = append(diffs[:12], "…")
		}
		s.t.Errorf("the single server and the Cluster differ:\n  %s", strings.Join(diffs, "\n  "))
	}
	s.note("%d profiles, %d :link and %d :links keys alike on both", len(pa), len(oa), len(la))
}

// redisSetup is the Cluster or the Sentinel set-up, as a fault scenario
// uses it.
type redisSetup interface {
	flush(t *testing.T)
	healthy() bool
	waitHealthy(t *testing.T, d time.Duration, after string)
	snapshot(to *redis.Client) (int, error)
}

// underFaults is a fault scenario on the emptied set-up r: two instances
// started with env, the stream produced over pace while the steps and
// faults run (see underLoad), the rest drained; then r healthy again
// (after names the wait in a failure), its keys copied to the scenario's
// server and checked under label.
func (s *scenario) underFaults(r redisSetup, env []string, pace time.Duration, steps []string, faults map[string]func(), after, label string) {
	r.flush(s.t)
	f := s.launch("", env...)
	s.underLoad(f, 2, pace, r.healthy, steps, faults)
	s.drain(drainTime)
	r.waitHealthy(s.t, time.Minute, after)
	s.snapshotFrom(r)
	s.check(label)
}

// clusterFailover: kill -9 of a master (its replica is promoted, the
// killed node comes back as a replica), then CLUSTER FAILOVER of another,
// with instances joining, leaving and killed around them.
func (cs *clusterSuite) clusterFailover(s *scenario) {
	promoted := 0
	s.underFaults(cs.cluster, cs.clusterEnv(), cs.pace, []string{"join", "kill-master", "leave", "join", "cluster-failover", "kill-9", "join"},
		map[string]func(){
			"kill-master":      func() { promoted = cs.cluster.killMaster(s) },
			"cluster-failover": func() { cs.cluster.failover(s, promoted) },
		}, "after the failovers", "cluster failover")
}

// clusterReshard: slots move between masters three times while profiled
// writes (MOVED and ASK), with instances joining, leaving and killed.
func (cs *clusterSuite) clusterReshard(s *scenario) {
	s.underFaults(cs.cluster, cs.clusterEnv(), cs.pace, []string{"join", "reshard", "leave", "reshard", "kill-9", "join", "reshard"},
		map[string]func(){"reshard": func() { cs.cluster.reshard(s, 1500) }}, "after resharding", "cluster reshard")
}

// sentinelFailover: kill -9 of the master twice; each time the sentinels
// promote a replica and the killed server comes back as a replica.
func (cs *clusterSuite) sentinelFailover(s *scenario) {
	// a Sentinel failover and the killed server's full resync take longer
	// than the Cluster's: the stream lasts half as long again, so that the
	// second kill still falls while events arrive
	s.underFaults(cs.sentinel, cs.sentinelEnv(), cs.pace*3/2, []string{"kill-master", "join", "kill-9", "kill-master", "join", "leave"},
		map[string]func(){"kill-master": func() { cs.sentinel.killMaster(s) }}, "after the failovers", "sentinel failover")
}
