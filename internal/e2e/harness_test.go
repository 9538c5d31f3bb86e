package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/internal/testenv"
)

type env struct {
	brokers  []string
	redisURL string
	rdb      *redis.Client
	conn     kafkaconn.Config
	bin      string
	svc      *testenv.Services
}

// The shared test support under the names these tests use.
var (
	eventually = testenv.Eventually
	freeAddr   = testenv.FreeAddr
	uniq       = testenv.Unique
	tail       = testenv.Tail
)

type syncBuffer = testenv.Buffer

// setup returns the real services, or skips the test.
func setup(t *testing.T) *env {
	t.Helper()
	s := testenv.Real(t)
	return &env{brokers: s.Brokers, redisURL: s.RedisURL, rdb: s.Redis, conn: s.Kafka, bin: testenv.Profiled(t), svc: s}
}

func (e *env) topic(t *testing.T, partitions int) string {
	t.Helper()
	return e.svc.Topic(t, partitions)
}

// produce writes values keyed as RudderStack keys them.
func (e *env) produce(t *testing.T, topic string, values [][]byte) {
	t.Helper()
	w := feed.NewWriter(e.brokers, topic, nil)
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Key: feed.Key(v), Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		// a new topic's leaders take a moment to reach every broker's
		// metadata: retry what the broker calls temporary, within ctx
		var err error
		if !testenv.Poll(time.Minute, 200*time.Millisecond, func() bool {
			err = w.WriteMessages(ctx, msgs[:n]...)
			return err == nil || ctx.Err() != nil
		}) || err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

type runOpts struct {
	topic, group, dlq, prefix string
	env                       []string
}

func (e *env) opts(t *testing.T, topic string) runOpts {
	return runOpts{topic: topic, group: uniq(t, "group"), dlq: uniq(t, "dlq"), prefix: uniq(t, "p") + ":"}
}

// onNewTopic is opts for a run on a new topic of the given partitions.
func (e *env) onNewTopic(t *testing.T, partitions int) runOpts {
	t.Helper()
	return e.opts(t, e.topic(t, partitions))
}

// setupTopic is setup and onNewTopic, the way most tests begin: the real
// services (or a skip) and a run on a new topic of the given partitions.
func setupTopic(t *testing.T, partitions int) (*env, runOpts) {
	t.Helper()
	e := setup(t)
	return e, e.onNewTopic(t, partitions)
}

// proc is a running profiled and the address of its HTTP server.
type proc struct {
	*testenv.Process
	cmd  *exec.Cmd
	out  *syncBuffer
	addr string
}

// start runs the real profiled binary.
func (e *env) start(t *testing.T, o runOpts) *proc {
	t.Helper()
	addr := freeAddr(t)
	env := append(os.Environ(),
		"PROFILED_KAFKA_BROKERS="+strings.Join(e.brokers, ","),
		"PROFILED_KAFKA_TOPICS="+o.topic,
		"PROFILED_KAFKA_GROUP="+o.group,
		"PROFILED_DLQ_TOPIC="+o.dlq,
		"PROFILED_REDIS_URL="+e.redisURL,
		"PROFILED_REDIS_KEY_PREFIX="+o.prefix,
		"PROFILED_HTTP_ADDR="+addr,
		"PROFILED_BATCH_TIME=20ms",
		"PROFILED_KAFKA_SESSION_TIMEOUT=6s",
		"PROFILED_DEFAULT_PHONE_REGION=IN",
	)
	p := testenv.Start(t, append(env, o.env...), e.bin)
	return &proc{Process: p, cmd: p.Cmd, out: p.Out, addr: addr}
}

func (p *proc) running() bool { return p.Running() }

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	return p.Wait(t, d)
}

func (p *proc) get(path string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, 60*time.Second, "/readyz 200", func() bool {
		code, _ := p.get("/readyz")
		return code == http.StatusOK
	})
}

// offsets returns the group's offsets of topic, or nil (logged) when the
// broker does not answer.
func (e *env) offsets(t *testing.T, group, topic string) map[int]kafkaconn.PartitionOffsets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := e.conn.GroupOffsets(ctx, group, topic)
	if err != nil {
		t.Logf("group offsets: %v", err)
		return nil
	}
	return offs
}

func (e *env) waitCaughtUp(t *testing.T, group, topic string, d time.Duration) {
	t.Helper()
	e.svc.CaughtUp(t, group, topic, d)
}

// profiles returns every profile under prefix, found as analysts would:
// SCAN MATCH <prefix>profile:{* and keys ending in "}".
func (e *env) profiles(t *testing.T, prefix string) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]string{}
	iter := e.rdb.Scan(ctx, 0, prefix+"profile:{*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if !strings.HasSuffix(k, "}") {
			continue
		}
		h, err := e.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(k, prefix+"profile:{"), "}")
		out[id] = h
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutClock drops the wall-clock fields, the only ones outside the
// order-independence rule.
func withoutClock(ps map[string]map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for id, h := range ps {
		c := map[string]string{}
		for k, v := range h {
			if k != "created_at" && k != "updated_at" {
				c[k] = v
			}
		}
		out[id] = c
	}
	return out
}

// readAll reads every record of topic up to its end.
func (e *env) readAll(t *testing.T, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	infos, err := e.conn.DescribeTopics(ctx, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	var all []kafka.Message
	for p := 0; p < infos[topic].Partitions; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", e.brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			all = append(all, m)
			if m.Offset+1 >= end {
				break
			}
		}
		r.Close()
	}
	return all
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func js(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func sortedIDs(ps map[string]map[string]string) []string {
	ids := make([]string, 0, len(ps))
	for id := range ps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
