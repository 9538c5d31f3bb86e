package e2e_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// TestEveryRejectionReachesTheDeadLetterTopic produces one record per
// rejection reason and checks the dead-letter topic: key, value and headers
// unchanged, plus the contract's headers, and the offsets committed.
func TestEveryRejectionReachesTheDeadLetterTopic(t *testing.T) {
	e, o := setupTopic(t, 2)
	now := time.Now().UTC()
	secret := "secret-value-4242"
	bad := map[string][]byte{
		"invalid_json":           []byte(`{"type":"track", "userId": "` + secret + `"`),
		"too_large":              js(map[string]any{"type": "page", "userId": "big", "pad": strings.Repeat("x", 33<<10)}),
		"missing_identity":       js(map[string]any{"type": "page", "userId": "null", "anonymousId": " ", "timestamp": now.Format(time.RFC3339)}),
		"bad_timestamp":          js(map[string]any{"type": "page", "userId": "u-bad-ts", "timestamp": secret}),
		"timestamp_out_of_range": js(map[string]any{"type": "page", "userId": "u-future", "timestamp": now.Add(48 * time.Hour).Format(time.RFC3339)}),
	}
	w := kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: o.topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for reason, v := range bad {
		msgs = append(msgs, kafka.Message{Key: []byte("key-" + reason), Value: v,
			Headers: []kafka.Header{{Key: "origin", Value: []byte(reason)}}})
	}
	msgs = append(msgs,
		kafka.Message{Key: []byte("good"), Value: js(map[string]any{"type": "page", "userId": "good", "timestamp": now.Format(time.RFC3339)})},
		kafka.Message{Key: []byte("tombstone"), Value: nil},
		kafka.Message{Key: []byte("array"), Value: []byte(`[1,2,3]`)},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, 30*time.Second, "produce", func() bool { return w.WriteMessages(ctx, msgs...) == nil })

	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	input := map[string]kafka.Message{}
	for _, m := range e.readAll(t, o.topic) {
		input[string(m.Key)] = m
	}
	dead := e.readAll(t, o.dlq)
	if len(dead) != len(bad)+1 {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad)+1)
	}
	for _, d := range dead {
		reason := header(d, "profiled.error.reason")
		src := input[string(d.Key)]
		if want := strings.TrimPrefix(string(d.Key), "key-"); string(d.Key) != "array" && reason != want {
			t.Errorf("key %s: reason %q", d.Key, reason)
		}
		if string(d.Key) == "array" && reason != "invalid_json" {
			t.Errorf("a JSON array: reason %q, want invalid_json", reason)
		}
		if string(d.Value) != string(src.Value) {
			t.Errorf("key %s: value changed", d.Key)
		}
		if string(d.Key) != "array" && header(d, "origin") != strings.TrimPrefix(string(d.Key), "key-") {
			t.Errorf("key %s: original header lost", d.Key)
		}
		if header(d, "profiled.source.topic") != o.topic ||
			header(d, "profiled.source.partition") != strconv.Itoa(src.Partition) ||
			header(d, "profiled.source.offset") != strconv.FormatInt(src.Offset, 10) {
			t.Errorf("key %s: source headers %v, record at %d/%d", d.Key, d.Headers, src.Partition, src.Offset)
		}
		if _, err := time.Parse(time.RFC3339Nano, header(d, "profiled.failed_at")); err != nil {
			t.Errorf("key %s: failed_at %q", d.Key, header(d, "profiled.failed_at"))
		}
		detail := header(d, "profiled.error.detail")
		if detail == "" || strings.Contains(detail, secret) {
			t.Errorf("key %s: detail %q", d.Key, detail)
		}
	}
	if strings.Contains(p.out.String(), secret) {
		t.Error("a personal value reached the log")
	}
	ps := e.profiles(t, o.prefix)
	if len(ps) != 1 || ps["good"] == nil {
		t.Errorf("profiles %v, want only good", sortedIDs(ps))
	}
	_, metrics := p.get("/metrics")
	for _, want := range []string{`profiled_records_skipped_total{reason="tombstone"} 1`,
		`profiled_records_dead_lettered_total{reason="invalid_json"} 2`,
		`profiled_records_dead_lettered_total{reason="too_large"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestDeadLetterFailureStopsThePartition makes the dead-letter write fail
// for good (the dead-letter topic's limit is below the size of profiled's
// own headers, so even the dead letter without value, key and producer
// headers is refused): nothing at or
// after that record is committed, and the stop is counted. (A record after
// it in the same batch may reach Redis, since dead letters and the Redis
// write go out together; it is never committed, and its offset keeps it
// from counting twice when the partition is delivered again.)
func TestDeadLetterFailureStopsThePartition(t *testing.T) {
	e, o := setupTopic(t, 1)
	e.svc.CreateTopic(t, o.dlq, 1, map[string]string{"max.message.bytes": "100"})
	ts := time.Now().UTC().Format(time.RFC3339)
	e.produce(t, o.topic, [][]byte{
		js(map[string]any{"type": "page", "userId": "before", "timestamp": ts}),
		[]byte(`{"broken": "` + strings.Repeat("y", 5000)), // invalid_json; its dead letter is too large in every shape
		js(map[string]any{"type": "page", "userId": "after", "timestamp": ts}),
	})
	p := e.start(t, o)
	eventually(t, 60*time.Second, "the partition to stop", func() bool {
		_, m := p.get("/metrics")
		return strings.Contains(m, "profiled_partitions_stopped 1")
	})
	// the partition counts as stopped when its batch is handed to the
	// committer, whose commit follows within its interval
	var offs map[int]kafkaconn.PartitionOffsets
	eventually(t, 30*time.Second, "the record before the failed dead letter to be committed", func() bool {
		offs = e.offsets(t, o.group, o.topic)
		return offs != nil && offs[0].Committed >= 1
	})
	if offs[0].Committed != 1 {
		t.Fatalf("committed %d, want 1: only the record before the failed dead letter", offs[0].Committed)
	}
	if ps := e.profiles(t, o.prefix); ps["before"] == nil {
		t.Fatalf("profiles %v, want before", sortedIDs(ps))
	}
	if !strings.Contains(p.out.String(), "dead-letter write failed for good") {
		t.Error("the failure was not logged")
	}
}

// proxy is a loopback TCP proxy the test can take down and bring back, to
// make Redis unreachable without losing its data.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	p.addr = freeAddr(t)
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(t *testing.T) {
	var ln net.Listener
	eventually(t, 10*time.Second, "proxy listen", func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

// down refuses new connections and cuts the open ones.
func (p *proxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestRedisOutage takes Redis away mid-stream: readiness goes false,
// nothing is committed past unwritten records, and when Redis is back every
// record is applied exactly once without a restart.
func TestRedisOutage(t *testing.T) {
	e, o := setupTopic(t, 3)
	values, want := workload(6, 4000, 100)
	target := strings.TrimPrefix(strings.Split(e.redisURL, "/0")[0], "redis://")
	px := newProxy(t, target)
	o.env = []string{"PROFILED_REDIS_URL=redis://" + px.addr + "/0", "PROFILED_REDIS_TIMEOUT=500ms"}
	p := e.start(t, o)
	p.waitReady(t)
	e.produce(t, o.topic, values[:1000])
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	before := e.offsets(t, o.group, o.topic)

	px.down()
	e.produce(t, o.topic, values[1000:])
	eventually(t, 30*time.Second, "/readyz to fail", func() bool {
		code, _ := p.get("/readyz")
		return code == http.StatusServiceUnavailable
	})
	// the invariant holds for a while: no commit moves during the outage
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for part, po := range e.offsets(t, o.group, o.topic) {
			if po.Committed != before[part].Committed {
				t.Fatalf("partition %d committed %d during the outage, was %d", part, po.Committed, before[part].Committed)
			}
		}
		if code, _ := p.get("/livez"); code != http.StatusOK {
			t.Fatal("/livez failed during a Redis outage: it must not check dependencies")
		}
		time.Sleep(200 * time.Millisecond)
	}

	px.up(t)
	e.waitCaughtUp(t, o.group, o.topic, 90*time.Second)
	p.waitReady(t)
	checkCounts(t, e.profiles(t, o.prefix), want)
	if _, m := p.get("/metrics"); !strings.Contains(m, "profiled_redis_errors_total") || strings.Contains(m, "profiled_redis_errors_total 0\n") {
		t.Error("redis errors not counted")
	}
}
