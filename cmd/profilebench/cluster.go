package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// The cluster mode (BENCH_ONLY=cluster, make bench-cluster): the pipeline
// measure on the single Redis server and on the 3-master Redis Cluster that
// deploy/testenv.sh starts, with 1, 2 and 3 instances in the group, and on
// the Cluster with PROFILED_REDIS_MIN_REPLICAS=1. Every process shares the
// machine's cores, so more instances show what the Cluster costs, not how
// profiled scales. It writes its table to cmd/profilebench/CLUSTER.md,
// which make bench appends to BENCHMARKS.md.

type clusterRun struct {
	name                  string
	instances             int
	cluster               bool
	aof                   bool // the single server with appendfsync always, as the Cluster's nodes
	minReplicas           int
	rate                  float64
	wall                  float64
	cpuProfiled, cpuRedis float64
	cpuKafka              float64
	batches, writeSeconds float64
	memPerProfile         float64
	profiles              int
}

func clusterBench(ctx context.Context, s settings, conn kafkaconn.Config, rdb *redis.Client, stamp string, values [][]byte) error {
	addrs := strings.Split(os.Getenv("PROFILED_TEST_REDIS_CLUSTER_ADDRS"), ",")
	if addrs[0] == "" {
		return fmt.Errorf("PROFILED_TEST_REDIS_CLUSTER_ADDRS is required (deploy/testenv.sh starts a Cluster unless TESTENV_CLUSTER=0)")
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	topic := "bench-cluster-" + stamp
	if err := conn.CreateTopic(ctx, topic, s.partitions); err != nil {
		return err
	}
	if err := produce(ctx, s.brokers, topic, values); err != nil {
		return err
	}
	if _, err := rawConsume(ctx, s, topic, "bench-warm-"+stamp); err != nil { // see run: a fresh broker's JIT
		return fmt.Errorf("warm-up: %w", err)
	}
	runs := []*clusterRun{
		{name: "single server, no AOF", instances: 1},
		{name: "single server, AOF always", instances: 1, aof: true},
		{name: "Cluster", instances: 1, cluster: true},
		{name: "Cluster", instances: 2, cluster: true},
		{name: "Cluster", instances: 3, cluster: true},
		{name: "Cluster, MIN_REPLICAS=1", instances: 1, cluster: true, minReplicas: 1},
		{name: "Cluster, MIN_REPLICAS=1", instances: 3, cluster: true, minReplicas: 1},
	}
	dir, err := os.MkdirTemp("", "profilebench-cluster-") // each instance's batch log
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kafkaPid, redisPid := servicePids(ctx, s)
	var nodePids []int
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.InfoMap(ctx, "server").Result()
		c.Close()
		if err != nil {
			return fmt.Errorf("cluster node %s: %w", a, err)
		}
		pid, _ := strconv.Atoi(info["Server"]["process_id"])
		nodePids = append(nodePids, pid)
	}
	redisCPU := func(cluster bool) float64 {
		if !cluster {
			return cpuSeconds(redisPid)
		}
		var sum float64
		for _, p := range nodePids {
			sum += cpuSeconds(p)
		}
		return sum
	}
	for i, r := range runs {
		prefix := fmt.Sprintf("cl%d-%s:", i, stamp)
		if r.cluster {
			if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() }); err != nil {
				return fmt.Errorf("flush the Cluster: %w", err)
			}
		}
		if err := setAOF(ctx, rdb, r.aof); err != nil {
			return err
		}
		mem0, err := usedMemory(ctx, cc, rdb, r.cluster)
		if err != nil {
			return err
		}
		logf("cluster mode: %s, %d instance(s)", r.name, r.instances)
		env := map[string]string{"PROFILED_REDIS_MIN_REPLICAS": strconv.Itoa(r.minReplicas)}
		rs := s
		if r.cluster {
			rs.redisURL = "" // an empty PROFILED_REDIS_URL is no URL
			env["PROFILED_REDIS_CLUSTER_ADDRS"] = strings.Join(addrs, ",")
		}
		for k, v := range env {
			os.Setenv(k, v) // startProfiled passes the environment on
		}
		group := fmt.Sprintf("bench-cluster-%d-%s", i, stamp)
		k0, r0 := cpuSeconds(kafkaPid), redisCPU(r.cluster)
		start := time.Now()
		var ps []*proc
		var logs []string
		for j := range r.instances {
			logs = append(logs, filepath.Join(dir, fmt.Sprintf("batches-%d-%d.jsonl", i, j)))
			p, err := startProfiled(rs, topic, group, prefix, logs[j])
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		err = waitCaughtUp(ctx, conn, group, topic, 30*time.Minute, logWritten(s.events, logs...))
		r.wall = time.Since(start).Seconds()
		r.cpuKafka, r.cpuRedis = cpuSeconds(kafkaPid)-k0, redisCPU(r.cluster)-r0
		for _, p := range ps {
			r.batches += scrape(p.addr, "profiled_redis_write_duration_seconds_count")
			r.writeSeconds += scrape(p.addr, "profiled_redis_write_duration_seconds_sum")
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cpu, _ := p.stop()
				mu.Lock()
				r.cpuProfiled += cpu
				mu.Unlock()
			}()
		}
		wg.Wait()
		for k := range env {
			os.Unsetenv(k)
		}
		if err != nil {
			return err
		}
		r.rate = float64(s.events) / r.wall
		mem1, err := usedMemory(ctx, cc, rdb, r.cluster)
		if err != nil {
			return err
		}
		if r.profiles, err = countProfiles(ctx, cc, rdb, r.cluster, prefix); err != nil {
			return err
		}
		if r.profiles > 0 {
			r.memPerProfile = float64(mem1-mem0) / float64(r.profiles)
		}
		logf("cluster mode: %.0f events/s, CPU-s profiled %.1f, Redis %.1f, broker %.1f over %.1f s; %d batches, %.2f ms per Redis write; %d profiles, %.0f bytes each",
			r.rate, r.cpuProfiled, r.cpuRedis, r.cpuKafka, r.wall, int(r.batches), 1000*r.writeSeconds/max(r.batches, 1), r.profiles, r.memPerProfile)
		if !r.cluster {
			if _, err := dropPrefix(ctx, rdb, prefix); err != nil {
				return err
			}
		}
	}
	if err := setAOF(ctx, rdb, false); err != nil {
		return err
	}
	return writeCluster(s, runs)
}

// setAOF turns the single server's append-only file on (fsync always) or
// off; turning it on rewrites it first, which is waited for.
func setAOF(ctx context.Context, rdb *redis.Client, on bool) error {
	if !on {
		return rdb.ConfigSet(ctx, "appendonly", "no").Err()
	}
	if err := rdb.ConfigSet(ctx, "appendfsync", "always").Err(); err != nil {
		return err
	}
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, err := rdb.InfoMap(ctx, "persistence").Result()
		if err == nil && info["Persistence"]["aof_rewrite_in_progress"] == "0" && info["Persistence"]["aof_rewrite_scheduled"] == "0" {
			return nil
		}
	}
	return fmt.Errorf("the single server's append-only file was not written within 2 minutes")
}

// sumServers adds one's answer over the single server, or over the
// Cluster's masters.
func sumServers[T int | int64](ctx context.Context, cc *redis.ClusterClient, rdb *redis.Client, cluster bool, one func(*redis.Client) (T, error)) (T, error) {
	if !cluster {
		return one(rdb)
	}
	var mu sync.Mutex
	var sum T
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := one(c)
		mu.Lock()
		sum += n
		mu.Unlock()
		return err
	})
	return sum, err
}

// usedMemory is the used_memory of the single server, or the sum over the
// Cluster's masters (replicas hold as much again).
func usedMemory(ctx context.Context, cc *redis.ClusterClient, rdb *redis.Client, cluster bool) (int64, error) {
	return sumServers(ctx, cc, rdb, cluster, func(c *redis.Client) (int64, error) {
		info, err := c.InfoMap(ctx, "memory").Result()
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	})
}

// countProfiles counts the profile hashes under prefix.
func countProfiles(ctx context.Context, cc *redis.ClusterClient, rdb *redis.Client, cluster bool, prefix string) (int, error) {
	return sumServers(ctx, cc, rdb, cluster, func(c *redis.Client) (int, error) {
		n := 0
		it := c.Scan(ctx, 0, prefix+"profile:{*", 5000).Iterator()
		for it.Next(ctx) {
			if keyKind(it.Val()) == "profile" {
				n++
			}
		}
		return n, it.Err()
	})
}

func writeCluster(s settings, runs []*clusterRun) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## Redis Cluster (`make bench-cluster`)\n\n")
	fmt.Fprintf(&b, "Written on %s: %d records of the standard workload, %d partitions, %d cores (%s), every process on them: profiled, the broker, and the single server (without, then with an append-only file fsynced always) or all six Cluster nodes (3 masters, 3 replicas, AOF `appendfsync always`). More instances here share the same two cores, so the rows show what the Cluster and `MIN_REPLICAS` cost, not how profiled scales.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), s.events, s.partitions, runtime.NumCPU(), cpuModel())
	b.WriteString("| Redis | instances | events/s | CPU-s per million: profiled | Redis (all nodes) | broker | batches | mean Redis write per batch | Redis memory per profile (masters) |\n|---|---|---|---|---|---|---|---|---|\n")
	perM := func(x float64) float64 { return x / float64(s.events) * 1e6 }
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %.0f | %.2f ms | %.0f bytes |\n", r.name, r.instances, r.rate,
			perM(r.cpuProfiled), perM(r.cpuRedis), perM(r.cpuKafka), r.batches, 1000*r.writeSeconds/max(r.batches, 1), r.memPerProfile)
	}
	fmt.Println(b.String())
	return os.WriteFile(filepath.Join("cmd", "profilebench", "CLUSTER.md"), []byte(b.String()), 0o644)
}
