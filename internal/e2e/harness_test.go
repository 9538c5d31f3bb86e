package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

type env struct {
	brokers  []string
	redisURL string
	rdb      *redis.Client
	conn     kafkaconn.Config
	bin      string
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("PROFILED_TEST_BINARY"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "profiled-e2e")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "profiled")
		out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/profiled").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// setup returns the real services, or skips the test.
func setup(t *testing.T) *env {
	t.Helper()
	brokers, url := os.Getenv("PROFILED_TEST_KAFKA_BROKERS"), os.Getenv("PROFILED_TEST_REDIS_URL")
	if testing.Short() || brokers == "" || url == "" {
		t.Skip("needs PROFILED_TEST_KAFKA_BROKERS and PROFILED_TEST_REDIS_URL (make test sets them)")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	e := &env{brokers: strings.Split(brokers, ","), redisURL: url, rdb: rdb, bin: binary(t)}
	e.conn = kafkaconn.Config{Brokers: e.brokers}
	return e
}

func uniq(t *testing.T, what string) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%s-%d", what, strings.ToLower(name), rand.IntN(1e9))
}

func (e *env) topic(t *testing.T, partitions int) string {
	t.Helper()
	name := uniq(t, "events")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.conn.CreateTopic(ctx, name, partitions); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "topic metadata", func() bool {
		infos, err := e.conn.DescribeTopics(ctx, []string{name})
		return err == nil && infos[name].Partitions == partitions
	})
	return name
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
		for {
			err := w.WriteMessages(ctx, msgs[:n]...)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
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

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	addr string
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the real profiled binary.
func (e *env) start(t *testing.T, o runOpts) *proc {
	t.Helper()
	p := &proc{out: &syncBuffer{}, addr: freeAddr(t), done: make(chan struct{})}
	p.cmd = exec.Command(e.bin)
	p.cmd.Env = append(os.Environ(),
		"PROFILED_KAFKA_BROKERS="+strings.Join(e.brokers, ","),
		"PROFILED_KAFKA_TOPICS="+o.topic,
		"PROFILED_KAFKA_GROUP="+o.group,
		"PROFILED_DLQ_TOPIC="+o.dlq,
		"PROFILED_REDIS_URL="+e.redisURL,
		"PROFILED_REDIS_KEY_PREFIX="+o.prefix,
		"PROFILED_HTTP_ADDR="+p.addr,
		"PROFILED_BATCH_TIME=20ms",
		"PROFILED_KAFKA_SESSION_TIMEOUT=6s",
		"PROFILED_DEFAULT_PHONE_REGION=IN",
	)
	p.cmd.Env = append(p.cmd.Env, o.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("profiled (pid %d) output:\n%s", p.cmd.Process.Pid, tail(p.out.String(), 60))
		}
	})
	return p
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("profiled did not exit within %s", d)
		return -1
	}
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
	eventually(t, d, "group "+group+" to commit every record", func() bool {
		offs := e.offsets(t, group, topic)
		return offs != nil && kafkaconn.CaughtUp(offs)
	})
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
