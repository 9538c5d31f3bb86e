package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
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
	e := setup(t)
	topic := e.topic(t, 2)
	o := e.opts(t, topic)
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
	e := setup(t)
	topic := e.topic(t, 1)
	o := e.opts(t, topic)
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
	if !strings.Contains(out, topic) {
		t.Errorf("the configuration log does not show the input topic %s", topic)
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
