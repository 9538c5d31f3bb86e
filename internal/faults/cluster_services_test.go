package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
)

// The cluster suite's Redis set-ups: a 3-master, 3-replica Redis Cluster
// (deploy/redis-cluster.sh) and 1 master, 2 replicas and 3 sentinels
// (deploy/redis-sentinel.sh), both with append-only files fsynced on every
// write. The scripts do the starting, killing and restarting; the suite
// reads the state with go-redis.

// deployScript runs one of deploy/'s scripts with its own cache dir and its
// data in it, so that the record of the running set-up never replaces that
// of a set-up someone else started on this machine.
type deployScript struct {
	path string
	env  []string
}

// startScript runs the script's start, and its stop (removing its cache
// dir) when the test ends or the test binary is stopped; it returns the
// script and what start printed.
func startScript(t *testing.T, name string, env ...string) (*deployScript, string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "profiled-"+strings.TrimSuffix(name, ".sh"))
	if err != nil {
		t.Fatal(err)
	}
	sh := &deployScript{path: filepath.Join(root, "deploy", name),
		env: append(append(testenv.Environ("REDIS_", "PROFILED_CACHE"), "PROFILED_CACHE="+dir,
			"REDIS_CLUSTER_DATA_DIR="+filepath.Join(dir, "data"), "REDIS_SENTINEL_DATA_DIR="+filepath.Join(dir, "data")), env...)}
	stop := func() { _, _ = sh.run(time.Minute, "stop"); os.RemoveAll(dir) }
	out, err := sh.run(2*time.Minute, "start")
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(stop)
	atExit(stop)
	return sh, out
}

func (d *deployScript) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", append([]string{d.path}, args...)...)
	c.Env = d.env
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(d.path), strings.Join(args, " "), err, testenv.Tail(string(out), 20))
	}
	return string(out), nil
}

// redisCluster is the suite's Redis Cluster.
type redisCluster struct {
	sh    *deployScript
	ports []int
	addrs []string
}

func startCluster(t *testing.T, first int) *redisCluster {
	t.Helper()
	sh, out := startScript(t, "redis-cluster.sh", "REDIS_CLUSTER_PORT="+strconv.Itoa(first))
	c := &redisCluster{sh: sh}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "REDIS_CLUSTER_ADDRS="); ok {
			c.addrs = strings.Split(strings.TrimSpace(v), ",")
		}
	}
	if len(c.addrs) != 6 {
		t.Fatalf("redis-cluster.sh start printed no 6 addresses:\n%s", out)
	}
	for i := range 6 {
		c.ports = append(c.ports, first+i)
	}
	return c
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, master string
	port             int
	isMaster, failed bool
	slots            int
}

func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: 30 * time.Second, PoolSize: 4})
}

// nodes returns the cluster as the first live node sees it.
func (c *redisCluster) nodes() ([]clusterNode, error) {
	var last error
	for _, a := range c.addrs {
		rdb := nodeClient(a)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		text, err := rdb.ClusterNodes(ctx).Result()
		cancel()
		rdb.Close()
		if err != nil {
			last = err
			continue
		}
		var out []clusterNode
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			f := strings.Fields(l)
			if len(f) < 8 {
				continue
			}
			n := clusterNode{id: f[0], addr: strings.Split(f[1], "@")[0], master: f[3],
				isMaster: strings.Contains(f[2], "master"), failed: strings.Contains(f[2], "fail")}
			_, p, _ := strings.Cut(n.addr, ":")
			n.port, _ = strconv.Atoi(p)
			for _, r := range f[8:] {
				if lo, hi, ok := strings.Cut(r, "-"); ok && !strings.HasPrefix(r, "[") {
					a, _ := strconv.Atoi(lo)
					b, _ := strconv.Atoi(hi)
					n.slots += b - a + 1
				} else if !strings.HasPrefix(r, "[") {
					n.slots++
				}
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, last
}

// masters returns the masters that hold slots and are not failing.
func (c *redisCluster) masters() ([]clusterNode, error) {
	ns, err := c.nodes()
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	for _, n := range ns {
		if n.isMaster && !n.failed && n.slots > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// healthy reports whether every node answers with cluster_state:ok, no
// node is flagged failing, and each of the 3 masters has a replica whose
// link is up: MIN_REPLICAS=1 can be met everywhere.
func (c *redisCluster) healthy() bool {
	ns, err := c.nodes()
	if err != nil || len(ns) != 6 {
		return false
	}
	masters := 0
	for _, n := range ns {
		if n.failed {
			return false
		}
		rdb := nodeClient(n.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		info, err := rdb.ClusterInfo(ctx).Result()
		repl, err2 := rdb.Info(ctx, "replication").Result()
		cancel()
		rdb.Close()
		if err != nil || err2 != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		if n.isMaster {
			masters++
			if !strings.Contains(repl, "state=online") {
				return false
			}
		} else if !strings.Contains(repl, "master_link_status:up") {
			return false
		}
	}
	return masters == 3
}

func (c *redisCluster) waitHealthy(t *testing.T, d time.Duration, after string) {
	t.Helper()
	if !testenv.Poll(d, 200*time.Millisecond, c.healthy) {
		st, _ := c.sh.run(time.Minute, "status")
		t.Fatalf("the cluster is not healthy %s within %s:\n%s", after, d, st)
	}
}

// forMasters runs fn on a client of every master, in turn.
func (c *redisCluster) forMasters(fn func(*redis.Client) error) error {
	ms, err := c.masters()
	if err != nil {
		return err
	}
	if len(ms) != 3 {
		return fmt.Errorf("%d masters hold slots, want 3", len(ms))
	}
	for _, m := range ms {
		rdb := nodeClient(m.addr)
		err := fn(rdb)
		rdb.Close()
		if err != nil {
			return fmt.Errorf("master %s: %w", m.addr, err)
		}
	}
	return nil
}

// flush empties the cluster between scenarios.
func (c *redisCluster) flush(t *testing.T) {
	t.Helper()
	c.waitHealthy(t, time.Minute, "before the scenario")
	if err := c.forMasters(func(rdb *redis.Client) error {
		return rdb.FlushAll(context.Background()).Err()
	}); err != nil {
		t.Fatal(err)
	}
}

// snapshot copies every key of the cluster into a single server, where the
// fault suite's checks read it (their SCAN sees one node only).
func (c *redisCluster) snapshot(to *redis.Client) (int, error) {
	total := 0
	err := c.forMasters(func(rdb *redis.Client) error {
		n, err := copyKeys(rdb, to)
		total += n
		return err
	})
	return total, err
}

// copyKeys copies every key of from into to with DUMP and RESTORE.
func copyKeys(from, to *redis.Client) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var keys []string
	iter := from.Scan(ctx, 0, "*", 2000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	n := len(keys)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 1000)]
		keys = keys[len(chunk):]
		dumps := make([]*redis.StringCmd, len(chunk))
		if _, err := from.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range chunk {
				dumps[i] = p.Dump(ctx, k)
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("dump: %w", err)
		}
		if _, err := to.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range chunk {
				p.RestoreReplace(ctx, k, 0, dumps[i].Val())
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("restore: %w", err)
		}
	}
	return n, nil
}

// killMaster kills -9 a random master while its replica lags (see
// lagging), waits until the replica has taken its slots, and starts the
// killed node again (it rejoins as a replica); it returns the port of the
// promoted replica.
func (c *redisCluster) killMaster(s *scenario) int {
	s.t.Helper()
	ms, err := c.masters()
	if err != nil || len(ms) != 3 {
		s.t.Fatalf("masters: %v (%d)", err, len(ms))
	}
	m := ms[s.rng.IntN(len(ms))]
	ns, err := c.nodes()
	if err != nil {
		s.t.Fatal(err)
	}
	var replicas []string
	for _, n := range ns {
		if !n.isMaster && n.master == m.id {
			replicas = append(replicas, n.addr)
		}
	}
	lagging(s, m.addr, replicas, func() {
		if _, err := c.sh.run(time.Minute, "kill", strconv.Itoa(m.port)); err != nil {
			s.t.Fatal(err)
		}
	})
	before := map[string]bool{}
	for _, o := range ms {
		before[o.id] = true
	}
	promoted := 0
	if !testenv.Poll(time.Minute, 100*time.Millisecond, func() bool {
		now, err := c.masters()
		if err != nil {
			return false
		}
		for _, n := range now {
			if !before[n.id] {
				promoted = n.port
				return true
			}
		}
		return false
	}) {
		s.t.Fatalf("no replica of %s was promoted within a minute", m.addr)
	}
	if _, err := c.sh.run(time.Minute, "restart", strconv.Itoa(m.port)); err != nil {
		s.t.Fatal(err)
	}
	return promoted
}

// failover runs CLUSTER FAILOVER on a replica of a master other than
// skip's: a planned switch, the replica first catches up.
func (c *redisCluster) failover(s *scenario, skip int) {
	s.t.Helper()
	var ns []clusterNode
	if !testenv.Poll(time.Minute, 200*time.Millisecond, func() bool {
		var err error
		ns, err = c.nodes()
		return err == nil && c.healthy()
	}) {
		s.t.Fatal("the cluster is not healthy for a CLUSTER FAILOVER")
	}
	var candidates []clusterNode
	byID := map[string]clusterNode{}
	for _, n := range ns {
		byID[n.id] = n
	}
	for _, n := range ns {
		if !n.isMaster && byID[n.master].port != skip {
			candidates = append(candidates, n)
		}
	}
	r := candidates[s.rng.IntN(len(candidates))]
	if _, err := c.sh.run(time.Minute, "failover", strconv.Itoa(r.port)); err != nil {
		s.t.Fatal(err)
	}
}

// reshard moves slots from one random master to another with
// redis-cli --cluster reshard, which migrates their keys one by one while
// clients write (MOVED and ASK for those who come to the old owner).
func (c *redisCluster) reshard(s *scenario, slots int) {
	s.t.Helper()
	c.waitHealthy(s.t, time.Minute, "before resharding")
	ms, err := c.masters()
	if err != nil || len(ms) < 2 {
		s.t.Fatalf("masters: %v", err)
	}
	s.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	from, to := ms[0], ms[1]
	slots = min(slots, from.slots-1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", "--cluster", "reshard", to.addr,
		"--cluster-from", from.id, "--cluster-to", to.id, "--cluster-slots", strconv.Itoa(slots),
		"--cluster-yes").CombinedOutput()
	if err != nil {
		s.t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, testenv.Tail(string(out), 20))
	}
}

// redisSentinel is the suite's Sentinel set-up.
type redisSentinel struct {
	sh        *deployScript
	servers   []int
	sentinels []string
	master    string
}

func startSentinel(t *testing.T, first int) *redisSentinel {
	t.Helper()
	sh, out := startScript(t, "redis-sentinel.sh", "REDIS_SENTINEL_PORT="+strconv.Itoa(first))
	r := &redisSentinel{sh: sh, servers: []int{first, first + 1, first + 2}}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "REDIS_SENTINEL_ADDRS="); ok {
			r.sentinels = strings.Split(strings.TrimSpace(v), ",")
		}
		if v, ok := strings.CutPrefix(l, "REDIS_SENTINEL_MASTER="); ok {
			r.master = strings.TrimSpace(v)
		}
	}
	if len(r.sentinels) != 3 || r.master == "" {
		t.Fatalf("redis-sentinel.sh start printed no sentinels:\n%s", out)
	}
	return r
}

// current returns the master every sentinel names, or "" while they differ.
func (r *redisSentinel) current() string {
	var got string
	for _, a := range r.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, DialTimeout: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		v, err := sc.GetMasterAddrByName(ctx, r.master).Result()
		cancel()
		sc.Close()
		if err != nil || len(v) != 2 {
			return ""
		}
		a := v[0] + ":" + v[1]
		if got != "" && got != a {
			return ""
		}
		got = a
	}
	return got
}

// healthy reports whether the sentinels agree on a master that is one and
// has both replicas online.
func (r *redisSentinel) healthy() bool {
	m := r.current()
	if m == "" {
		return false
	}
	rdb := nodeClient(m)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	repl, err := rdb.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(repl, "role:master") && strings.Count(repl, "state=online") == 2
}

func (r *redisSentinel) waitHealthy(t *testing.T, d time.Duration, after string) {
	t.Helper()
	if !testenv.Poll(d, 200*time.Millisecond, r.healthy) {
		st, _ := r.sh.run(time.Minute, "status")
		t.Fatalf("the Sentinel set-up is not healthy %s within %s:\n%s", after, d, st)
	}
}

// killMaster kills -9 the master while both replicas lag (see lagging),
// waits until the sentinels name another, and starts the killed server
// again as a replica.
func (r *redisSentinel) killMaster(s *scenario) {
	s.t.Helper()
	r.waitHealthy(s.t, time.Minute, "before killing the master")
	m := r.current()
	_, port, _ := strings.Cut(m, ":")
	var replicas []string
	for _, p := range r.servers {
		if a := "127.0.0.1:" + strconv.Itoa(p); a != m {
			replicas = append(replicas, a)
		}
	}
	lagging(s, m, replicas, func() {
		if _, err := r.sh.run(time.Minute, "kill", port); err != nil {
			s.t.Fatal(err)
		}
	})
	if !testenv.Poll(time.Minute, 100*time.Millisecond, func() bool {
		c := r.current()
		return c != "" && c != m
	}) {
		s.t.Fatalf("the sentinels did not promote a replica of %s within a minute", m)
	}
	if _, err := r.sh.run(time.Minute, "restart", port); err != nil {
		s.t.Fatal(err)
	}
}

func (r *redisSentinel) flush(t *testing.T) {
	t.Helper()
	r.waitHealthy(t, time.Minute, "before the scenario")
	rdb := nodeClient(r.current())
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func (r *redisSentinel) snapshot(to *redis.Client) (int, error) {
	m := r.current()
	if m == "" {
		return 0, fmt.Errorf("the sentinels do not agree on a master")
	}
	rdb := nodeClient(m)
	defer rdb.Close()
	return copyKeys(rdb, to)
}

// producePaced writes the records in order, like produce, but spread over
// about d in chunks ten times a second, as events arrive in production; it
// notes where each record landed.
func producePaced(ctx context.Context, addr, topic string, recs []*rec, d time.Duration) error {
	p, err := newProducer(addr, topic)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	per := max(len(recs)/max(int(d/(100*time.Millisecond)), 1), 1)
	for i := 0; i < len(recs); i += per {
		for _, r := range recs[i:min(i+per, len(recs))] {
			if err := p.send(ctx, r); err != nil {
				p.close(ctx)
				return err
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			p.close(ctx)
			return ctx.Err()
		}
	}
	return p.close(ctx)
}

// lagging runs kill about a second after the replicas at addrs lost their
// link to the master (stopped with SIGSTOP, their connections closed by
// the master with CLIENT KILL TYPE replica), and lets them go on (SIGCONT)
// right after: the master has acknowledged writes that no replica has, as
// after a network hiccup, so the failover that follows drops them unless
// profiled waited for a replica (PROFILED_REDIS_MIN_REPLICAS) before it
// committed. On loopback a replica is otherwise never far enough behind for
// a kill to land in that window; and a stopped replica alone would still
// find the writes in its socket's buffer.
func lagging(s *scenario, master string, addrs []string, kill func()) {
	s.t.Helper()
	var pids []int
	for _, a := range addrs {
		rdb := nodeClient(a)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		info, err := rdb.InfoMap(ctx, "server").Result()
		cancel()
		rdb.Close()
		if err != nil {
			s.t.Fatalf("replica %s: %v", a, err)
		}
		pid, err := strconv.Atoi(info["Server"]["process_id"])
		if err != nil {
			s.t.Fatalf("replica %s: process_id %q", a, info["Server"]["process_id"])
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	defer func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	rdb := nodeClient(master)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err()
	cancel()
	rdb.Close()
	if err != nil {
		s.t.Fatalf("CLIENT KILL TYPE replica on %s: %v", master, err)
	}
	// the lag itself: below the Cluster's node timeout (2 s) and about the
	// sentinels' down-after (1 s), so that the replicas stay eligible
	time.Sleep(800*time.Millisecond + time.Duration(s.rng.IntN(400))*time.Millisecond)
	kill()
}
