package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/profiled/profiled/internal/kafka"
)

// The variables that say which services tests use. deploy/testenv.sh
// (and so make test) starts a real broker and redis-server and sets the
// first three, and a Redis Cluster for the last unless TESTENV_CLUSTER=0.
const (
	EnvKafkaBrokers      = "PROFILED_TEST_KAFKA_BROKERS"       // host:port[,host:port...]
	EnvRedisURL          = "PROFILED_TEST_REDIS_URL"           // redis://host:port/db
	EnvRedisServer       = "PROFILED_TEST_REDIS_SERVER"        // the redis-server binary, for suites that run their own
	EnvServices          = "PROFILED_TEST_SERVICES"            // auto (default), scripts or containers
	EnvRedisClusterAddrs = "PROFILED_TEST_REDIS_CLUSTER_ADDRS" // host:port[,host:port...] of a Redis Cluster
)

// Services is a Kafka and a Redis for a test.
type Services struct {
	Brokers  []string
	RedisURL string
	// Kafka reaches Brokers, for admin calls.
	Kafka kafka.Config
	// Redis is a client of RedisURL, closed when the test ends.
	Redis *redis.Client
	// Miniredis is the in-process Redis, or nil with a real one.
	Miniredis *miniredis.Miniredis
}

// Real returns a real Kafka broker and Redis server, or skips the test
// (always under -short) when there are none.
func Real(t testing.TB) *Services {
	t.Helper()
	if testing.Short() {
		t.Skip("needs real Kafka and Redis; not with -short")
	}
	brokers, url, err := locate(os.Getenv(EnvServices))
	if err != nil {
		t.Fatal(err)
	}
	if brokers == nil {
		t.Skipf("needs %s and %s (make test sets them) or a Docker engine", EnvKafkaBrokers, EnvRedisURL)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", EnvRedisURL, err)
	}
	return newServices(t, brokers, url, redis.NewClient(opts), nil)
}

// RealRedis returns a client of the real Redis that EnvRedisURL names,
// closed when the test ends, or skips the test (always under -short): for
// tests that need a Redis server and no Kafka.
func RealRedis(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(EnvRedisURL)
	if url == "" || testing.Short() {
		t.Skipf("needs a real Redis: %s (deploy/testenv.sh sets it)", EnvRedisURL)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", EnvRedisURL, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// RealCluster returns a client of the Redis Cluster that
// EnvRedisClusterAddrs names, closed when the test ends, or skips the test
// (always under -short).
func RealCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := os.Getenv(EnvRedisClusterAddrs)
	if addrs == "" || testing.Short() {
		t.Skipf("%s names no Redis Cluster", EnvRedisClusterAddrs)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { c.Close() })
	return c
}

// locate is the one place that decides which real services tests use:
// those the environment names (deploy/testenv.sh exports them), Kafka
// and Redis containers started once per test binary (testcontainers-go),
// or none. auto takes the environment's services when it names them, else
// containers when a Docker engine answers.
func locate(mode string) (brokers []string, redisURL string, err error) {
	b, u := os.Getenv(EnvKafkaBrokers), os.Getenv(EnvRedisURL)
	switch mode {
	case "", "auto":
		if b == "" || u == "" {
			if testing.Short() || !dockerReachable() {
				return nil, "", nil
			}
			return fromContainers()
		}
	case "scripts":
		if b == "" || u == "" {
			return nil, "", fmt.Errorf("%s=scripts: run the tests under deploy/testenv.sh, which sets %s and %s", EnvServices, EnvKafkaBrokers, EnvRedisURL)
		}
	case "containers":
		return fromContainers()
	default:
		return nil, "", fmt.Errorf("%s=%q: want auto, scripts or containers", EnvServices, mode)
	}
	logPath(false)
	return strings.Split(b, ","), u, nil
}

func fromContainers() ([]string, string, error) {
	brokers, url, err := sharedContainers()
	if err != nil {
		return nil, "", fmt.Errorf("%s: Kafka and Redis containers: %w", EnvServices, err)
	}
	logPath(true)
	return brokers, url, nil
}

var logged sync.Once

// logPath says once per test binary, on standard error, which services
// its tests run against.
func logPath(containers bool) {
	logged.Do(func() { fmt.Fprintln(os.Stderr, servicesLine(containers)) })
}

// InProcess returns an in-process Kafka-protocol broker (kfake) with the
// given topics (name to partition count) and an in-process Redis
// (miniredis): no servers needed, so tests on them run under -short. The
// Redis client does not retry, so a test sees each error Miniredis is
// told to return.
func InProcess(t testing.TB, topics map[string]int) *Services {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(int32(n), name))
	}
	cl, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	return newServices(t, cl.ListenAddrs(), "redis://"+mr.Addr()+"/0", rdb, mr)
}

func newServices(t testing.TB, brokers []string, url string, rdb *redis.Client, mr *miniredis.Miniredis) *Services {
	t.Cleanup(func() { rdb.Close() })
	return &Services{Brokers: brokers, RedisURL: url, Kafka: kafka.Config{Brokers: brokers}, Redis: rdb, Miniredis: mr}
}

// RedisServer is the redis-server binary for suites that run their own:
// $PROFILED_TEST_REDIS_SERVER, else redis-server from the PATH.
func RedisServer() string {
	if b := os.Getenv(EnvRedisServer); b != "" {
		return b
	}
	return "redis-server"
}

// Topic creates a topic with a name of its own (Unique) and the given
// partitions, and waits until the broker's metadata shows them all.
func (s *Services) Topic(t testing.TB, partitions int) string {
	t.Helper()
	name := Unique(t, "events")
	s.CreateTopic(t, name, partitions, nil)
	return name
}

// CreateTopic creates the topic with configs (nil for the broker's
// defaults) and waits until the broker's metadata shows every partition.
func (s *Services) CreateTopic(t testing.TB, name string, partitions int, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Kafka.CreateTopicWithConfigs(ctx, name, partitions, configs); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, "topic "+name+" in the metadata", func() bool {
		infos, err := s.Kafka.DescribeTopics(ctx, []string{name})
		return err == nil && infos[name].Partitions == partitions
	})
}

// CaughtUp waits up to d until group has committed every record of topic.
// It asks over one client: a fresh one for each look cost the broker
// about 10 ms of CPU, half a core at a look every 20 ms.
func (s *Services) CaughtUp(t testing.TB, group, topic string, d time.Duration) {
	t.Helper()
	w, err := s.Kafka.NewOffsetWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	Eventually(t, d, "group "+group+" to commit every record of "+topic, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := w.GroupOffsets(ctx, group, topic)
		return err == nil && kafka.CaughtUp(offs)
	})
}
