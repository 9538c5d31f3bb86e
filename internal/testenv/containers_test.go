package testenv

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

func TestServicesLine(t *testing.T) {
	for _, c := range []struct {
		kafka, redis string
		containers   bool
		want         string
	}{
		{"", "", true, "test services: containers (apache/kafka:4.1.1, redis:7.4)"},
		{"local/kafka:4.1.1", "local/redis:7.0", true, "test services: containers (local/kafka:4.1.1, local/redis:7.0)"},
		{"local/kafka:4.1.1", "", false, "test services: scripts"},
	} {
		t.Setenv(EnvKafkaImage, c.kafka)
		t.Setenv(EnvRedisImage, c.redis)
		if got := servicesLine(c.containers); got != c.want {
			t.Errorf("servicesLine(%v) with %q, %q = %q, want %q", c.containers, c.kafka, c.redis, got, c.want)
		}
	}
}

// needsDocker skips a test that starts containers when there is no engine.
func needsDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containers; not with -short")
	}
	if os.Getenv(EnvServices) == "scripts" {
		t.Skipf("%s=scripts: no containers", EnvServices)
	}
	if !DockerReachable() {
		if os.Getenv(EnvServices) == "containers" {
			t.Fatalf("%s=containers and no Docker engine answers", EnvServices)
		}
		t.Skip("needs a Docker engine")
	}
}

// TestContainersPath runs what Real returns on the containers path: a
// topic created on the Kafka container, a write read back from the Redis
// container.
func TestContainersPath(t *testing.T) {
	needsDocker(t)
	t.Setenv(EnvKafkaBrokers, "")
	t.Setenv(EnvRedisURL, "")
	t.Setenv(EnvServices, "containers")
	s := Real(t)
	topic := s.Topic(t, 3)
	if err := s.Redis.Set(context.Background(), topic, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Redis.Get(context.Background(), topic).Result(); err != nil || v != "v" {
		t.Fatalf("GET %q %v", v, err)
	}
	// The same pair serves the whole test binary.
	again := Real(t)
	if again.Brokers[0] != s.Brokers[0] || again.RedisURL != s.RedisURL {
		t.Fatalf("second Real: %v %s, first %v %s", again.Brokers, again.RedisURL, s.Brokers, s.RedisURL)
	}
}

// TestContainersTerminated checks that a test's own pair is gone, with its
// volumes, once the test has ended.
func TestContainersTerminated(t *testing.T) {
	needsDocker(t)
	var ids []string
	t.Run("pair", func(t *testing.T) {
		p := Containers(t)
		ids = []string{p.Kafka.GetContainerID(), p.Redis.GetContainerID()}
		if err := p.Services(t).Redis.Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	})
	for _, id := range ids {
		if exists(t, id) {
			t.Errorf("container %s still exists after its test", id[:12])
		}
	}
}

// TestLeftoversRemoved: a container whose owning test binary is gone is
// removed; one whose owner runs is kept.
func TestLeftoversRemoved(t *testing.T) {
	needsDocker(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gone := idle(t, strconv.Itoa(dead.Process.Pid))
	kept := idle(t, strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := removeLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(t, gone) {
		t.Error("the container of a dead test binary was kept")
	}
	if !exists(t, kept) {
		t.Error("the container of a running test binary was removed")
	}
}

// TestReaper: the reaper removes its owner's containers when its standard
// input closes, as it does when the test binary that started it exits.
func TestReaper(t *testing.T) {
	needsDocker(t)
	owner := "reaper-test-" + strconv.Itoa(os.Getpid())
	mine := idle(t, owner)
	other := idle(t, strconv.Itoa(os.Getpid()))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envReaper+"="+owner)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !exists(t, mine) {
		t.Fatal("the reaper removed containers before its input closed")
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reaper: %v", err)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the reaper did not exit within a minute")
	}
	if exists(t, mine) {
		t.Error("the reaper left its owner's container")
	}
	if !exists(t, other) {
		t.Error("the reaper removed a container of another owner")
	}
}

// idle starts a container of the Redis image labelled as owned by owner,
// removed when the test ends if it is still there.
func idle(t *testing.T, owner string) string {
	t.Helper()
	_, redisImage := Images()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := testcontainers.Run(ctx, redisImage,
		testcontainers.WithLogger(tclog.NewNoopLogger()),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "none" }),
		testcontainers.WithLabels(map[string]string{LabelTest: "true", LabelOwner: owner}),
		testcontainers.WithCmd("redis-server", "--port", "0", "--unixsocket", "/tmp/redis.sock", "--save", ""))
	if c != nil {
		t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.GetContainerID()
}

// exists reports whether the engine still has the container.
func exists(t *testing.T, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("id", id)})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items) > 0
}
