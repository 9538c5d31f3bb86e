package consumer_test

import (
	kafkaconn "github.com/profiled/profiled/internal/kafka"

	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/profile"
)

// The tests in this file need the real broker (deploy/testenv.sh sets
// PROFILED_TEST_KAFKA_BROKERS): record size limits and topic settings are
// the broker's, and the in-process one is not the authority on them.

// brokerLimit is the broker's default message.max.bytes, which a topic's
// max.message.bytes takes unless set.
const brokerLimit = 1048588

type realBroker struct {
	brokers []string
	conn    kafkaconn.Config
	admin   *kafka.Client
	stamp   string
}

func newRealBroker(t *testing.T) *realBroker {
	t.Helper()
	env := os.Getenv("PROFILED_TEST_KAFKA_BROKERS")
	if env == "" || testing.Short() {
		t.Skip("needs the real broker: run under deploy/testenv.sh, without -short")
	}
	brokers := strings.Split(env, ",")
	return &realBroker{brokers: brokers, conn: kafkaconn.Config{Brokers: brokers},
		admin: &kafka.Client{Addr: kafka.TCP(brokers...)}, stamp: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// topic creates a topic named after the test; maxBytes 0 keeps the
// broker's default limit.
func (b *realBroker) topic(t *testing.T, name string, partitions, maxBytes int) string {
	t.Helper()
	name = name + "-" + b.stamp
	tc := kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}
	if maxBytes > 0 {
		tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(maxBytes)}}
	}
	resp, err := b.admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return name
}

func (b *realBroker) maxBytes(t *testing.T, topic string) int {
	t.Helper()
	resp, err := b.admin.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"max.message.bytes"}}}})
	if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].ConfigEntries) != 1 {
		t.Fatalf("describe %s: %v %+v", topic, err, resp)
	}
	n, err := strconv.Atoi(resp.Resources[0].ConfigEntries[0].ConfigValue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *realBroker) produce(t *testing.T, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Topic = topic
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// dead reads n records of the dead-letter topic.
func (b *realBroker) dead(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, pollRecords(ctx, cl)...)
	}
	if len(out) != n {
		t.Fatalf("%d dead letters in %s, want %d", len(out), topic, n)
	}
	return out
}

func pollRecords(ctx context.Context, cl *kgo.Client) []*kgo.Record {
	var out []*kgo.Record
	cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

// consumer prepares a consumer of topic in its own group that
// dead-letters to dlq, writing to a fake store.
func (b *realBroker) consumer(t *testing.T, ctx context.Context, topic, dlq string) (*consumer.Consumer, *fakeStore, *prometheus.Registry, string) {
	t.Helper()
	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	store, reg, group := newFakeStore(), prometheus.NewRegistry(), "g-"+topic
	c, err := consumer.New(consumer.Config{Conn: b.conn, Topics: []string{topic}, Group: group, DLQTopic: dlq,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond}, zerolog.New(io.Discard), reg, dec, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return c, store, reg, group
}

// runToEnd runs a consumer of topic until every record is committed, and
// checks that no partition stopped on the way.
func (b *realBroker) runToEnd(t *testing.T, topic, dlq string) *fakeStore {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, store, reg, group := b.consumer(t, ctx, topic, dlq)
	stop := run(t, ctx, cancel, c)
	w, err := b.conn.NewOffsetWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	until(t, 30*time.Second, "every record committed", func() bool {
		offs, err := w.GroupOffsets(ctx, group, topic)
		return err == nil && caughtUp(offs)
	})
	stop()
	if n := gauge(t, reg, "profiled_partitions_stopped"); n != 0 {
		t.Errorf("%v partitions stopped", n)
	}
	return store
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func page(user string) []byte {
	return []byte(fmt.Sprintf(`{"type":"page","userId":%q,"timestamp":%q}`, user, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)))
}

// lag reads the consumer-lag gauge of one partition; false when absent.
func lag(t *testing.T, reg *prometheus.Registry, topic string, partition int) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "profiled_consumer_lag_records" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var tp, pp string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "topic":
					tp = l.GetValue()
				case "partition":
					pp = l.GetValue()
				}
			}
			if tp == topic && pp == strconv.Itoa(partition) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestDLQTopicCreatedWithRoom: the dead-letter topic profiled creates
// takes the input topics' largest max.message.bytes plus 64 KiB.
func TestDLQTopicCreatedWithRoom(t *testing.T) {
	b := newRealBroker(t)
	small := b.topic(t, "room-default", 1, 0)
	large := b.topic(t, "room-large", 1, 2_000_000)
	dlq := "room-dlq-" + b.stamp
	dec, _ := profile.NewDecoder(profile.DefaultConfig())
	c, err := consumer.New(consumer.Config{Conn: b.conn, Topics: []string{small, large}, Group: "g-room-" + b.stamp, DLQTopic: dlq},
		zerolog.New(io.Discard), prometheus.NewRegistry(), dec, newFakeStore())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := b.maxBytes(t, dlq), 2_000_000+64<<10; got != want {
		t.Errorf("dead-letter topic max.message.bytes %d, want %d", got, want)
	}
}

// TestRecordAtBrokerLimitDeadLettered: a record as large as the input
// topic takes (the broker's default limit) is too large for profiled; its
// dead letter, value and all, fits the dead-letter topic profiled created,
// and the partition goes on. Before, the dead-letter topic had the same
// limit as the input, refused the dead letter and the partition stopped.
func TestRecordAtBrokerLimitDeadLettered(t *testing.T) {
	b := newRealBroker(t)
	topic := b.topic(t, "atlimit", 1, 0)
	dlq := "atlimit-dlq-" + b.stamp // created by Prepare
	// the largest value the topic accepts in a batch of one record: the
	// limit less the batch header (61 bytes) and the record's framing
	big := kgo.SliceRecord(nil)
	big.Value = make([]byte, brokerLimit-61-20)
	for i := range big.Value {
		big.Value[i] = 'x'
	}
	b.produce(t, topic, big, &kgo.Record{Value: page("after-limit")})

	store := b.runToEnd(t, topic, dlq)
	if store.field("after-limit", "web_visits") != "1" {
		t.Error("the record after the large one was not applied")
	}
	d := b.dead(t, dlq, 1)[0]
	if len(d.Value) != len(big.Value) {
		t.Errorf("dead letter value %d bytes, want %d", len(d.Value), len(big.Value))
	}
	if reason, _ := header(d, consumer.HeaderReason); reason != profile.ReasonTooLarge {
		t.Errorf("reason %q", reason)
	}
	if _, ok := header(d, consumer.HeaderValueDropped); ok {
		t.Error("value dropped though it fits")
	}
}

// TestDeadLetterTooLargeWrittenSmaller: a dead-letter topic smaller than
// the input (an operator's choice) refuses a dead letter as too large; it
// is written again with a null value, and when still too large without
// the producer's key and headers, each step marked on it; the partition
// goes on. A producer's profiled.* header arrives renamed.
func TestDeadLetterTooLargeWrittenSmaller(t *testing.T) {
	b := newRealBroker(t)
	topic := b.topic(t, "smaller", 1, 0)
	dlq := b.topic(t, "smaller-dlq", 1, 4096)
	value := []byte(strings.Repeat("v", 40<<10)) // too_large for profiled (32 KiB)
	noValue := &kgo.Record{Key: []byte("k1"), Value: value,
		Headers: []kgo.RecordHeader{{Key: "profiled.error.reason", Value: []byte("forged")}}}
	noHeaders := &kgo.Record{Key: []byte("k2"), Value: value,
		Headers: []kgo.RecordHeader{{Key: "bulky", Value: []byte(strings.Repeat("h", 8<<10))}}}
	b.produce(t, topic, noValue, noHeaders, &kgo.Record{Value: page("after-smaller")})

	store := b.runToEnd(t, topic, dlq)
	if store.field("after-smaller", "web_visits") != "1" {
		t.Error("the record after them was not applied")
	}
	got := map[string]*kgo.Record{}
	for _, d := range b.dead(t, dlq, 2) {
		off, _ := header(d, consumer.HeaderSourceOffset)
		got[off] = d
	}
	first, second := got["0"], got["1"]
	if first == nil || second == nil {
		t.Fatalf("dead letters by source offset: %v", got)
	}
	if first.Value != nil || string(first.Key) != "k1" {
		t.Errorf("first: key %q, value %d bytes; want k1 and a null value", first.Key, len(first.Value))
	}
	if v, _ := header(first, consumer.HeaderValueDropped); v != strconv.Itoa(len(value)) {
		t.Errorf("first: %s = %q, want %d", consumer.HeaderValueDropped, v, len(value))
	}
	if v, _ := header(first, "profiled.original.error.reason"); v != "forged" {
		t.Errorf("first: the forged header renamed: %q", v)
	}
	if v, _ := header(first, consumer.HeaderReason); v != profile.ReasonTooLarge {
		t.Errorf("first: %s = %q (the first header of that name must be profiled's)", consumer.HeaderReason, v)
	}
	if second.Value != nil || second.Key != nil {
		t.Errorf("second: key %q, value %d bytes; want neither", second.Key, len(second.Value))
	}
	if _, ok := header(second, "bulky"); ok {
		t.Error("second: the producer's header kept")
	}
	if v, _ := header(second, consumer.HeaderKeyHeadersDropped); v != strconv.Itoa(2+5+8<<10) {
		t.Errorf("second: %s = %q", consumer.HeaderKeyHeadersDropped, v)
	}
	if v, _ := header(second, consumer.HeaderValueDropped); v != strconv.Itoa(len(value)) {
		t.Errorf("second: %s = %q", consumer.HeaderValueDropped, v)
	}
}

// TestStoppedPartitionLagKeepsGrowing: a dead letter that fails for good
// (here a dead-letter topic too small for profiled's own headers) stops
// its partition; its consumer-lag gauge keeps growing as records arrive
// behind it, and stays through a new generation. Before, the gauge was
// not set for a stopped partition and was reset at each generation, so
// the lag alert could not fire for the partition that needs a human.
func TestStoppedPartitionLagKeepsGrowing(t *testing.T) {
	b := newRealBroker(t)
	topic := b.topic(t, "stopped", 1, 0)
	dlq := b.topic(t, "stopped-dlq", 1, 64)
	recs := []*kgo.Record{{Value: []byte(`{"type":"page"`)}}
	for i := 0; i < 5; i++ {
		recs = append(recs, &kgo.Record{Value: page(fmt.Sprintf("s%d", i))})
	}
	b.produce(t, topic, recs...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, _, reg, _ := b.consumer(t, ctx, topic, dlq)
	stop := run(t, ctx, cancel, c)
	until(t, 30*time.Second, "the partition stopped with lag 6", func() bool {
		n, ok := lag(t, reg, topic, 0)
		return gauge(t, reg, "profiled_partitions_stopped") == 1 && ok && n == 6
	})
	more := make([]*kgo.Record, 10)
	for i := range more {
		more[i] = &kgo.Record{Value: page(fmt.Sprintf("m%d", i))}
	}
	b.produce(t, topic, more...)
	until(t, 30*time.Second, "lag 16 after 10 more records", func() bool {
		n, ok := lag(t, reg, topic, 0)
		return ok && n == 16
	})

	// a new partition makes a new generation; partition 0 stays assigned
	resp, err := b.admin.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 2}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		gens := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "profiled_generations_total" {
				gens = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if gens >= 2 {
			if n, ok := lag(t, reg, topic, 0); !ok || n < 16 {
				t.Fatalf("after the new generation: lag %v (present %v), want at least 16", n, ok)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new generation within 60 s of adding a partition")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.produce(t, topic, &kgo.Record{Value: page("late"), Partition: 0})
	until(t, 30*time.Second, "lag 17 in the new generation", func() bool {
		n, ok := lag(t, reg, topic, 0)
		return ok && n == 17
	})
	stop()
}
