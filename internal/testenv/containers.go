package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The images of the containers path; the defaults are the official
// images, and deploy/images.sh builds local stand-ins where no registry
// can be reached.
const (
	EnvKafkaImage = "PROFILED_TEST_KAFKA_IMAGE"
	EnvRedisImage = "PROFILED_TEST_REDIS_IMAGE"

	DefaultKafkaImage = "apache/kafka:4.1.1"
	DefaultRedisImage = "redis:7.4"
)

// Labels of every container this package starts: LabelOwner holds the
// pid of the test binary that started it, so that a later test binary can
// tell a leftover (its owner is gone) from a container in use.
const (
	LabelTest  = "org.profiled.test"
	LabelOwner = "org.profiled.test.owner"
)

// envReaper, set in the environment of a copy of the test binary, makes
// that copy the reaper: it waits until its standard input closes (the
// test binary that started it has exited, however it ended) and then
// removes the containers the test binary owned.
const envReaper = "PROFILED_TESTENV_REAPER"

func init() {
	if owner := os.Getenv(envReaper); owner != "" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = removeContainers(ctx, func(o string) bool { return o == owner })
		os.Exit(0)
	}
	// Ryuk, testcontainers-go's own reaper, is an image pulled from a
	// registry; the reaper above and every test's own cleanup do its work.
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// Images returns the Kafka and Redis images of the containers path.
func Images() (kafkaImage, redisImage string) {
	return envOr(EnvKafkaImage, DefaultKafkaImage), envOr(EnvRedisImage, DefaultRedisImage)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// dockerReachable is DockerReachable, replaced in tests of locate.
var dockerReachable = DockerReachable

// DockerReachable reports whether a Docker engine answers.
func DockerReachable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false
	}
	defer cli.Close()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err == nil
}

// ContainerPair is a Kafka and a Redis container on the host network.
type ContainerPair struct {
	Brokers  []string
	RedisURL string
	Kafka    *testcontainers.DockerContainer
	Redis    *testcontainers.DockerContainer
}

// Terminate stops and removes both containers and their volumes.
func (p *ContainerPair) Terminate() error {
	var errs []error
	for _, c := range []*testcontainers.DockerContainer{p.Kafka, p.Redis} {
		if c != nil {
			errs = append(errs, testcontainers.TerminateContainer(c, testcontainers.RemoveVolumes()))
		}
	}
	return errors.Join(errs...)
}

// Containers starts a Kafka and a Redis container of the configured
// images for this test alone, on free loopback ports of the host
// network, and terminates them when the test ends.
func Containers(t testing.TB) *ContainerPair {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containers; not with -short")
	}
	if !DockerReachable() {
		t.Skip("needs a Docker engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := startContainers(ctx)
	if p != nil {
		t.Cleanup(func() {
			if err := p.Terminate(); err != nil {
				t.Errorf("terminate containers: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shared is the pair of containers Real uses: started once per test
// binary, removed by the reaper when the binary exits.
var shared struct {
	once sync.Once
	pair *ContainerPair
	err  error
}

func sharedContainers() ([]string, string, error) {
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.pair, shared.err = startContainers(ctx)
	})
	if shared.err != nil {
		return nil, "", shared.err
	}
	return shared.pair.Brokers, shared.pair.RedisURL, nil
}

var setup struct {
	once sync.Once
	err  error
}

// prepare, once per test binary, removes the containers of test binaries
// that are gone and starts this binary's reaper.
func prepare(ctx context.Context) error {
	setup.once.Do(func() {
		if err := removeLeftovers(ctx); err != nil {
			setup.err = err
			return
		}
		setup.err = startReaper(strconv.Itoa(os.Getpid()))
	})
	return setup.err
}

// Labels returns the labels of a container a test starts by other means
// (the profiled image, a compose stack), after making sure this test
// binary's reaper runs: with them, the container is removed when the test
// binary exits, or by the next test binary if that failed.
func Labels(t testing.TB) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return map[string]string{LabelTest: "true", LabelOwner: strconv.Itoa(os.Getpid())}
}

// removeLeftovers removes the containers whose owning test binary is gone
// (with Ryuk off, nothing else would).
func removeLeftovers(ctx context.Context) error {
	self := strconv.Itoa(os.Getpid())
	return removeContainers(ctx, func(o string) bool { return o != self && !alive(o) })
}

// alive reports whether the process with the pid exists.
func alive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	return syscall.Kill(n, 0) == nil
}

// startReaper runs a copy of this test binary as the reaper of owner's
// containers. Its standard input is a pipe whose write end only this
// process holds, so the reaper sees end of file when this process exits
// in any way; it is not killed with the test binary (no Pdeathsig) so
// that it outlives it.
func startReaper(owner string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envReaper+"="+owner)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	reaperStdin = w // kept open until this process exits
	go func() { _ = cmd.Wait() }()
	return nil
}

// reaperStdin is the write end of the reaper's input, held (never written)
// so that the pipe stays open, and the file unfinalized, until this
// process exits.
//
//lint:ignore U1000 held, never read: see above
var reaperStdin io.WriteCloser

// removeContainers removes every container of this package whose owner
// label matches.
func removeContainers(ctx context.Context, match func(owner string) bool) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelTest)})
	if err != nil {
		return fmt.Errorf("list test containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		if match(c.Labels[LabelOwner]) {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
			}
		}
	}
	return errors.Join(errs...)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startContainers starts Kafka (KRaft, one node) and Redis on the host
// network, on free loopback ports, and waits until both serve.
func startContainers(ctx context.Context) (*ContainerPair, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	kport, cport, rport := ports[0], ports[1], ports[2]
	kafkaImage, redisImage := Images()
	host := testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" })
	labels := testcontainers.WithLabels(map[string]string{LabelTest: "true", LabelOwner: strconv.Itoa(os.Getpid())})
	quiet := testcontainers.WithLogger(tclog.NewNoopLogger())
	p := &ContainerPair{
		Brokers:  []string{fmt.Sprintf("127.0.0.1:%d", kport)},
		RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0", rport),
	}

	p.Redis, err = testcontainers.Run(ctx, redisImage, host, labels, quiet,
		testcontainers.WithCmd("redis-server", "--port", strconv.Itoa(rport), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--protected-mode", "no"),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("Ready to accept connections")))
	if err != nil {
		return p, fmt.Errorf("redis container %s: %w", redisImage, err)
	}

	listeners := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", kport, cport)
	p.Kafka, err = testcontainers.Run(ctx, kafkaImage, host, labels, quiet,
		testcontainers.WithEnv(map[string]string{
			// what deploy/kafka.sh writes into server.properties, in
			// apache/kafka's environment interface
			"KAFKA_NODE_ID":                                          "1",
			"KAFKA_PROCESS_ROLES":                                    "broker,controller",
			"KAFKA_LISTENERS":                                        listeners,
			"KAFKA_ADVERTISED_LISTENERS":                             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", kport),
			"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
			"KAFKA_INTER_BROKER_LISTENER_NAME":                       "PLAINTEXT",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                         fmt.Sprintf("1@127.0.0.1:%d", cport),
			"KAFKA_LOG_DIRS":                                         "/tmp/kraft-combined-logs",
			"KAFKA_NUM_PARTITIONS":                                   "1",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":                       "1",
			"KAFKA_MIN_INSYNC_REPLICAS":                              "1",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "3",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
			"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "3",
			"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
			"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
			// tests use short consumer session timeouts
			"KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "1000",
		}),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute, wait.ForLog("Kafka Server started")))
	if err != nil {
		return p, fmt.Errorf("kafka container %s: %w", kafkaImage, err)
	}
	return p, nil
}

// servicesLine is the line Real logs once per test binary.
func servicesLine(containers bool) string {
	if containers {
		k, r := Images()
		return fmt.Sprintf("test services: containers (%s, %s)", k, r)
	}
	return "test services: scripts"
}

// Services is the pair as Services: admin calls on its Kafka, a client of
// its Redis (closed when the test ends).
func (p *ContainerPair) Services(t testing.TB) *Services {
	t.Helper()
	opts, err := redis.ParseURL(p.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	return newServices(t, p.Brokers, p.RedisURL, redis.NewClient(opts), nil)
}
