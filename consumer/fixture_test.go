package consumer_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
)

// fixture is the in-process broker (topics "events" and "dlq") and the
// fake store that the consumer tests run on; no services needed, so they
// run under -short too.
type fixture struct {
	brokers []string
	conn    kafkaconn.Config
	store   *fakeStore
	reg     *prometheus.Registry
}

func newFixture(t *testing.T, partitions int) *fixture {
	t.Helper()
	s := testenv.InProcess(t, map[string]int{"events": partitions, "dlq": 1})
	return &fixture{brokers: s.Brokers, conn: s.Kafka, store: newFakeStore(), reg: prometheus.NewRegistry()}
}

// produceLaunches writes n App Launched events, a minute old, of the users
// u0 to u<users-1> in turn, with the message ids m0 to m<n-1>, to "events".
func (f *fixture) produceLaunches(t *testing.T, n, users int) {
	t.Helper()
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"type":"track","event":"App Launched","userId":"u%d","messageId":"m%d","timestamp":"%s"}`,
			i%users, i, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)))
	}
	w := feed.NewWriter(f.brokers, "events", nil)
	defer w.Close()
	if _, err := feed.Lines(context.Background(), w, strings.NewReader(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
}

// consumer prepares a consumer of "events" in group "g" that dead-letters
// to "dlq"; cfg adds the rest.
func (f *fixture) consumer(t *testing.T, ctx context.Context, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn, cfg.Topics, cfg.Group, cfg.DLQTopic = f.conn, []string{"events"}, "g", "dlq"
	c, err := consumer.New(cfg, zerolog.New(io.Discard), f.reg, dec, f.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts c; the function it returns cancels the run and checks that
// Run returned cleanly.
func run(t *testing.T, ctx context.Context, cancel context.CancelFunc, c *consumer.Consumer) func() {
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// until polls cond with a deadline.
var until = testenv.Eventually

// caughtUp reports whether a group has committed every record.
var caughtUp = kafkaconn.CaughtUp
