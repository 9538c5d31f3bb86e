package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/sink"
)

type latencyResult struct {
	p50, p99 float64
	ms       []float64 // every probe's latency, sorted
	note     string
	window   string // what the machine did during the measured window
}

// latency produces at a steady rate into a fresh topic that a running
// profiled consumes. After a warm-up at the same rate (not measured: the
// new topic, profiled's first batches, the first requests of the broker's
// new code paths), one record in twenty is a probe: an app launch of a
// user of its own. A probe's latency runs from the moment the producer's
// write returned acknowledged to the moment Redis published the keyspace
// notification of the probe profile's first write — the moment its effect
// became readable (the script is atomic, so the notification comes from
// inside the write that makes the profile visible).
func latency(ctx context.Context, s settings, conn kafkaconn.Config, rdb *redis.Client, stamp string, values [][]byte) (latencyResult, error) {
	topic := "bench-lat-" + stamp
	prefix := "lat-" + stamp + ":"
	if err := conn.CreateTopic(ctx, topic, s.partitions); err != nil {
		return latencyResult{}, err
	}
	// The filler records, keyed before the clock starts: keying parses the
	// JSON, and the producer must not spend the cores it shares with what
	// is measured on that.
	fill := make([]kafka.Message, min(len(values), s.latencyRate*(s.latencyWarmup+s.latencySeconds)))
	for i := range fill {
		fill[i] = kafka.Message{Key: feed.Key(values[i]), Value: values[i]}
	}
	// warm the topic's metadata before timing
	w := feed.NewWriter(s.brokers, topic, nil)
	w.BatchTimeout = time.Millisecond
	defer w.Close()
	if err := writeRetry(ctx, w, []kafka.Message{{Value: []byte(`{"type":"screen"}`)}}); err != nil {
		return latencyResult{}, err
	}
	p, err := startProfiled(s, topic, "bench-lat-"+stamp, prefix, "")
	if err != nil {
		return latencyResult{}, err
	}
	defer p.stop()
	if err := waitReady(ctx, p); err != nil {
		return latencyResult{}, err
	}
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "Kh").Err(); err != nil {
		return latencyResult{}, err
	}
	defer rdb.ConfigSet(context.Background(), "notify-keyspace-events", "")
	db := rdb.Options().DB
	sub := rdb.PSubscribe(ctx, fmt.Sprintf("__keyspace@%d__:%sprofile:{probe-*}", db, prefix))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return latencyResult{}, err
	}
	seen := make(chan seenAt, 1<<16)
	go func() {
		for msg := range sub.Channel(redis.WithChannelSize(1 << 16)) {
			seen <- seenAt{key: msg.Channel[strings.Index(msg.Channel, ":")+1:], at: time.Now()}
		}
	}()

	acked := map[string]time.Time{}
	readable := map[string]time.Time{}
	drain := func() {
		for {
			select {
			case s := <-seen:
				if _, ok := readable[s.key]; !ok {
					readable[s.key] = s.at
				}
			default:
				return
			}
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := s.latencyRate / 100
	sent, probes, fi := 0, 0, 0
	var begin time.Time
	var before usage
	start := time.Now()
	measureFrom := start.Add(time.Duration(s.latencyWarmup) * time.Second)
	end := measureFrom.Add(time.Duration(s.latencySeconds) * time.Second)
	for time.Now().Before(end) {
		<-tick.C
		measuring := !time.Now().Before(measureFrom)
		if measuring && begin.IsZero() {
			begin = time.Now()
			before = takeUsage(ctx, s, rdb, p)
		}
		msgs := make([]kafka.Message, 0, perTick)
		var ids []string
		for k := 0; k < perTick; k++ {
			if measuring && (sent+k)%20 == 0 {
				id := fmt.Sprintf("probe-%d", probes)
				probes++
				ids = append(ids, sink.Key(prefix, id))
				v := fmt.Sprintf(`{"type":"track","event":"Application Opened","userId":%q,"messageId":%q,"timestamp":%q}`,
					id, id, time.Now().UTC().Format(time.RFC3339Nano))
				msgs = append(msgs, kafka.Message{Key: []byte(id), Value: []byte(v)})
				continue
			}
			msgs = append(msgs, fill[fi%len(fill)])
			fi++
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return latencyResult{}, err
		}
		at := time.Now()
		for _, id := range ids {
			acked[id] = at
		}
		if measuring {
			sent += len(msgs)
		}
		drain()
	}
	window := time.Since(begin)
	after := takeUsage(ctx, s, rdb, p)
	rate := float64(sent) / window.Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for len(readable) < len(acked) && time.Now().Before(deadline) {
		select {
		case s := <-seen:
			if _, ok := readable[s.key]; !ok {
				readable[s.key] = s.at
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	var ms []float64
	early := 0
	var trace *bufio.Writer
	if f, err := os.Create(os.Getenv("BENCH_LATENCY_TRACE")); err == nil {
		defer f.Close()
		trace = bufio.NewWriter(f)
		defer trace.Flush()
	}
	for id, a := range acked {
		rd, ok := readable[id]
		if !ok {
			return latencyResult{}, fmt.Errorf("probe %s never became readable", id)
		}
		d := rd.Sub(a)
		if d < 0 {
			early++
			d = 0
		}
		ms = append(ms, float64(d.Microseconds())/1000)
		if trace != nil {
			fmt.Fprintf(trace, "%s %d %.3f\n", id, a.UnixMicro(), float64(d.Microseconds())/1000)
		}
	}
	sort.Float64s(ms)
	pct := func(q float64) float64 { return ms[min(int(q*float64(len(ms))), len(ms)-1)] }
	note := fmt.Sprintf("%d probes over %s after a %ds warm-up, produced %.0f events/s", len(ms), window.Round(time.Second), s.latencyWarmup, rate)
	if early > 0 {
		note += fmt.Sprintf(", %d readable before the producer saw its ack (counted as 0)", early)
	}
	return latencyResult{p50: pct(0.50), p99: pct(0.99), ms: ms, note: note, window: after.since(before, window)}, nil
}

type seenAt struct {
	key string
	at  time.Time
}

func waitReady(ctx context.Context, p *proc) error {
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := c.Get("http://" + p.addr + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("profiled not ready within 60s")
}
