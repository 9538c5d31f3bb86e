package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/redis/go-redis/v9"
)

func TestStartupMissingInputTopicExits1NamingIt(t *testing.T) {
	e := setup(t)
	missing := uniq(t, "no-such-topic")
	o := e.opts(t, missing)
	p := e.start(t, o)
	if code := p.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
	}
	out := p.out.String()
	if !strings.Contains(out, missing) {
		t.Errorf("the error does not name the missing topic %s:\n%s", missing, tail(out, 40))
	}
	if !strings.Contains(out, "does not exist") {
		t.Errorf("the error does not say the topic does not exist:\n%s", tail(out, 40))
	}
	// checking must not create it (no auto-creation through metadata requests)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.conn.DescribeTopics(ctx, []string{missing}); !errors.Is(err, kafkaconn.ErrUnknownTopic) {
		t.Errorf("after the failed start, describe %s: %v, want it still unknown", missing, err)
	}
}

func TestStartupWithoutBrokersExits1NamingTheVariable(t *testing.T) {
	e := setup(t)
	o := e.opts(t, "events")
	// later entries win in exec's environment
	o.env = []string{"PROFILED_KAFKA_BROKERS=", "PROFILED_EMBEDDED=false"}
	p := e.start(t, o)
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
	}
	if out := p.out.String(); !strings.Contains(out, "PROFILED_KAFKA_BROKERS") {
		t.Errorf("the error does not name PROFILED_KAFKA_BROKERS:\n%s", tail(out, 40))
	}
	if strings.Contains(p.out.String(), "EMBEDDED in-process") {
		t.Error("an embedded broker or Redis was started without PROFILED_EMBEDDED=true")
	}
}

func TestStartupCreatesTheDeadLetterTopicAndTurnsReady(t *testing.T) {
	e, o := setupTopic(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := e.conn.DescribeTopics(ctx, []string{o.dlq}); !errors.Is(err, kafkaconn.ErrUnknownTopic) {
		t.Fatalf("dead-letter topic %s before the start: %v, want unknown", o.dlq, err)
	}

	p := e.start(t, o)
	eventually(t, 30*time.Second, "/livez 200", func() bool {
		code, _ := p.get("/livez")
		return code == http.StatusOK
	})
	p.waitReady(t)

	infos, err := e.conn.DescribeTopics(ctx, []string{o.dlq})
	if err != nil {
		t.Fatalf("dead-letter topic %s after the start: %v", o.dlq, err)
	}
	if infos[o.dlq].Partitions < 1 {
		t.Errorf("dead-letter topic %s has %d partitions", o.dlq, infos[o.dlq].Partitions)
	}
	if !strings.Contains(p.out.String(), "joined the consumer group") {
		t.Errorf("/readyz 200 without a \"joined the consumer group\" log line")
	}
	if !strings.Contains(p.out.String(), "created the dead-letter topic") {
		t.Errorf("no log line for the created dead-letter topic")
	}
	if code, body := p.get("/livez"); code != http.StatusOK {
		t.Errorf("/livez once ready: %d %s", code, body)
	}
	if code, body := p.get("/metrics"); code != http.StatusOK || !strings.Contains(body, "profiled_build_info") {
		t.Errorf("/metrics: %d, profiled_build_info missing", code)
	}
	if !p.running() {
		t.Fatal("profiled exited")
	}
}

func TestStartupLogsTheConfigurationRedacted(t *testing.T) {
	e, o := setupTopic(t, 1)
	const saslSecret, redisSecret = "sasl-pw-e2e-s3cret", "redis-pw-e2e-s3cret"
	// a password without a SASL mechanism is unused; so is a Redis
	// password next to a URL: both still reach the configuration log
	o.env = []string{"PROFILED_KAFKA_SASL_PASSWORD=" + saslSecret, "PROFILED_REDIS_PASSWORD=" + redisSecret}
	p := e.start(t, o)
	eventually(t, 60*time.Second, "the configuration log line", func() bool {
		return strings.Contains(p.out.String(), "starting with this configuration")
	})
	out := p.out.String()
	for _, s := range []string{saslSecret, redisSecret} {
		if strings.Contains(out, s) {
			t.Errorf("the output shows the secret %q", s)
		}
	}
	if !strings.Contains(out, "REDACTED") {
		t.Errorf("no REDACTED value in the configuration log")
	}
	if !strings.Contains(out, o.topic) {
		t.Errorf("the configuration log does not show the input topic %s", o.topic)
	}
}

func TestStartupHelpExits0(t *testing.T) {
	e := setup(t)
	cmd := exec.Command(e.bin, "--help")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("profiled --help: %v\n%s", err, out)
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit code %d, want 0", cmd.ProcessState.ExitCode())
	}
	for _, name := range []string{"PROFILED_KAFKA_BROKERS", "PROFILED_REDIS_URL", "PROFILED_EMBEDDED"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("--help does not list %s:\n%s", name, out)
		}
	}
}

var (
	faultInjectOnce sync.Once
	faultInjectBin  string
	faultInjectErr  error
)

// faultInjectBinary is profiled built with its fault-injection hook
// (-tags faultinject), which the crash tests need and the production
// binary lacks: $PROFILED_TEST_FAULTINJECT_BINARY, or built here.
func faultInjectBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("PROFILED_TEST_FAULTINJECT_BINARY"); b != "" {
		return b
	}
	faultInjectOnce.Do(func() {
		dir, err := os.MkdirTemp("", "profiled-faultinject")
		if err != nil {
			faultInjectErr = err
			return
		}
		faultInjectBin = filepath.Join(dir, "profiled")
		out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", faultInjectBin, "../../cmd/profiled").CombinedOutput()
		if err != nil {
			faultInjectErr = fmt.Errorf("go build -tags faultinject: %v\n%s", err, out)
		}
	})
	if faultInjectErr != nil {
		t.Fatal(faultInjectErr)
	}
	return faultInjectBin
}

// The production binary carries no test hook: it cannot even name the
// variable that makes the test build stall before a commit.
func TestStartupProductionBinaryHasNoTestHook(t *testing.T) {
	e := setup(t)
	const hook = "PROFILED_TEST_STALL_BEFORE_COMMIT"
	prod, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(prod, []byte(hook)) {
		t.Errorf("the production binary %s reads %s", e.bin, hook)
	}
	test, err := os.ReadFile(faultInjectBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(test, []byte(hook)) {
		t.Errorf("the fault-injection build lacks %s", hook)
	}
}

// Settings that are wrong on their face stop the start at once, naming the
// variable, before any connection is tried.
func TestStartupMalformedSettingExits1NamingIt(t *testing.T) {
	e := setup(t)
	cases := []struct {
		env  []string
		want []string
	}{
		{[]string{"PROFILED_KAFKA_BROKERS=garbage"}, []string{"PROFILED_KAFKA_BROKERS", "host:port"}},
		{[]string{"PROFILED_KAFKA_BROKERS=" + e.brokers[0] + ",kafka-1"}, []string{"PROFILED_KAFKA_BROKERS", `"kafka-1"`}},
		{[]string{"PROFILED_KAFKA_TLS_CA_FILE=/etc/ssl/certs/ca-certificates.crt"}, []string{"PROFILED_KAFKA_TLS_CA_FILE", "PROFILED_KAFKA_TLS=true"}},
		{[]string{"PROFILED_REDIS_KEY_PREFIX={tenant}:"}, []string{"PROFILED_REDIS_KEY_PREFIX", "hash tag"}},
		{[]string{"PROFILED_REDIS_KEY_PREFIX=app*"}, []string{"PROFILED_REDIS_KEY_PREFIX", "SCAN MATCH"}},
		{[]string{"PROFILED_MAX_LINKED_IDS=0"}, []string{"PROFILED_MAX_LINKED_IDS"}},
		{[]string{"PROFILED_KAFKA_BROKERS=", "PROFILED_REDIS_URL=", "PROFILED_EMBEDDED=true", "PROFILED_REDIS_MIN_REPLICAS=1"}, []string{"PROFILED_REDIS_MIN_REPLICAS", "embedded"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.env, " "), func(t *testing.T) {
			o := e.opts(t, "events")
			o.env = tc.env
			p := e.start(t, o)
			if code := p.wait(t, 30*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
			}
			for _, w := range tc.want {
				if !strings.Contains(p.out.String(), w) {
					t.Errorf("the output lacks %q:\n%s", w, tail(p.out.String(), 40))
				}
			}
		})
	}
}

// Kafka unreachable at start is waited for like an outage (alive, not
// ready, logged), and profiled joins when it comes; a typo in a variable's
// name is warned about.
func TestStartupWaitsForKafka(t *testing.T) {
	e, o := setupTopic(t, 1)
	px := newProxy(t, e.brokers[0])
	px.down()
	o.env = []string{"PROFILED_KAFKA_BROKERS=" + px.addr, "PROFILED_KAFKA_BROKER=typo:9092", "PROFILED_TEST_WHATEVER=1"}
	p := e.start(t, o)
	eventually(t, 30*time.Second, "the wait for Kafka in the log", func() bool {
		return strings.Contains(p.out.String(), "kafka does not answer yet")
	})
	eventually(t, 10*time.Second, "a second attempt", func() bool {
		return strings.Count(p.out.String(), "kafka does not answer yet") >= 2
	})
	if !p.running() {
		t.Fatalf("profiled exited while Kafka was unreachable:\n%s", tail(p.out.String(), 40))
	}
	if code, body := p.get("/livez"); code != http.StatusOK {
		t.Errorf("/livez while waiting for Kafka: %d %s, want 200", code, body)
	}
	if code, body := p.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka") {
		t.Errorf("/readyz while waiting for Kafka: %d %q, want 503 naming kafka", code, body)
	}
	out := p.out.String()
	if !strings.Contains(out, "PROFILED_KAFKA_BROKER\"") || !strings.Contains(out, "unknown PROFILED_* variable") {
		t.Errorf("no warning about the unknown PROFILED_KAFKA_BROKER:\n%s", tail(out, 40))
	}
	if strings.Contains(out, "PROFILED_TEST_WHATEVER") {
		t.Errorf("a warning about the test tools' PROFILED_TEST_WHATEVER:\n%s", tail(out, 40))
	}

	px.up(t)
	p.waitReady(t)
	e.produce(t, o.topic, [][]byte{js(map[string]any{"type": "identify", "userId": "u-late", "messageId": "m-1",
		"timestamp": "2026-11-20T10:00:00Z", "traits": map[string]any{"email": "late@example.com"}})})
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	if ps := e.profiles(t, o.prefix); ps["u-late"] == nil {
		t.Errorf("profiles %v, want u-late", sortedIDs(ps))
	}
}

// A session timeout the broker refuses stops the start naming the setting,
// instead of a join retried forever.
func TestStartupRefusedSessionTimeoutExits1NamingIt(t *testing.T) {
	e := setup(t)
	topic := e.topic(t, 1)
	// the test broker allows 1s..30m (group.min/max.session.timeout.ms)
	for _, timeout := range []string{"500ms", "45m"} {
		t.Run(timeout, func(t *testing.T) {
			o := e.opts(t, topic)
			o.env = []string{"PROFILED_KAFKA_SESSION_TIMEOUT=" + timeout}
			p := e.start(t, o)
			if code := p.wait(t, 60*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
			}
			if out := p.out.String(); !strings.Contains(out, "PROFILED_KAFKA_SESSION_TIMEOUT") {
				t.Errorf("the error does not name PROFILED_KAFKA_SESSION_TIMEOUT:\n%s", tail(out, 40))
			}
		})
	}
}

// Redis settings only the server can refuse (credentials, database) stop
// the start naming the setting, without showing the password.
func TestStartupRefusedRedisSettingsExit1NamingThem(t *testing.T) {
	e := setup(t)
	topic := e.topic(t, 1)
	hostPort := strings.TrimPrefix(strings.Split(e.redisURL, "/0")[0], "redis://")
	const secret = "s3cret-e2e-pw"
	guarded := strings.TrimPrefix(strings.TrimSuffix(startRedisServer(t, "--requirepass", "the-right-one"), "/0"), "redis://")
	cases := []struct{ name, url, want string }{
		{"wrong password", "redis://:" + secret + "@" + guarded + "/0", "WRONGPASS"},
		{"no password where one is required", "redis://" + guarded + "/0", "NOAUTH"},
		{"user that does not exist", "redis://nobody:" + secret + "@" + hostPort + "/0", "WRONGPASS"},
		{"database out of range", "redis://" + hostPort + "/99", "DB index"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := e.opts(t, topic)
			o.env = []string{"PROFILED_REDIS_URL=" + tc.url}
			p := e.start(t, o)
			if code := p.wait(t, 30*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
			}
			out := p.out.String()
			for _, w := range []string{"PROFILED_REDIS_URL", tc.want} {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, tail(out, 40))
				}
			}
			if strings.Contains(out, secret) {
				t.Errorf("the output shows the password")
			}
		})
	}
}

// A Redis that may evict keys would drop bookkeeping: the start stops and
// says why.
func TestStartupEvictingRedisExits1(t *testing.T) {
	e := setup(t)
	topic := e.topic(t, 1)
	url := startRedisServer(t, "--maxmemory-policy", "allkeys-lru")
	o := e.opts(t, topic)
	o.env = []string{"PROFILED_REDIS_URL=" + url}
	p := e.start(t, o)
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, tail(p.out.String(), 40))
	}
	out := p.out.String()
	for _, w := range []string{"maxmemory-policy is allkeys-lru", "noeviction", "count twice"} {
		if !strings.Contains(out, w) {
			t.Errorf("the output lacks %q:\n%s", w, tail(out, 40))
		}
	}
}

// startRedisServer runs a redis-server of its own with args on a free port
// and returns its URL.
func startRedisServer(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("PROFILED_TEST_REDIS_SERVER")
	if bin == "" {
		if bin, _ = exec.LookPath("redis-server"); bin == "" {
			t.Skip("needs redis-server (PROFILED_TEST_REDIS_SERVER)")
		}
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	eventually(t, 10*time.Second, "redis-server on "+addr, func() bool {
		err := rdb.Ping(context.Background()).Err()
		return err == nil || strings.HasPrefix(err.Error(), "NOAUTH") // it answers
	})
	return "redis://" + addr + "/0"
}

// Redis unreachable at start is waited for too (alive, not ready, logged),
// and SIGTERM during the wait stops profiled cleanly: nothing is in flight.
func TestStartupWaitsForRedisAndStopsCleanlyMeanwhile(t *testing.T) {
	e, o := setupTopic(t, 1)
	target := strings.TrimPrefix(strings.Split(e.redisURL, "/0")[0], "redis://")
	px := newProxy(t, target)
	px.down()
	o.env = []string{"PROFILED_REDIS_URL=redis://" + px.addr + "/0", "PROFILED_REDIS_TIMEOUT=500ms"}
	p := e.start(t, o)
	eventually(t, 30*time.Second, "two attempts to reach Redis in the log", func() bool {
		return strings.Count(p.out.String(), "redis does not answer yet") >= 2
	})
	if code, body := p.get("/livez"); code != http.StatusOK {
		t.Errorf("/livez while waiting for Redis: %d %s, want 200", code, body)
	}
	if code, body := p.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "redis") {
		t.Errorf("/readyz while waiting for Redis: %d %q, want 503 naming redis", code, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM during the wait, want 0; output:\n%s", code, tail(p.out.String(), 20))
	}
}
