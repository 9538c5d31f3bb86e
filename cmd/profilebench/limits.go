package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// rawConsume is one bound: kafka-go reading the topic in a fresh group,
// decoding nothing, committing once per batch.
func rawConsume(ctx context.Context, s settings, topic, group string) (ceilingResult, error) {
	kafkaPid, _ := servicePids(ctx, s)
	b0, k0 := cpuSeconds(os.Getpid()), cpuSeconds(kafkaPid)
	start := time.Now()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: s.batchSize, StartOffset: kafka.FirstOffset})
	defer r.Close()
	last := map[int]kafka.Message{}
	n := 0
	for n < s.events {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return ceilingResult{}, err
		}
		n++
		last[m.Partition] = m
		if n%s.batchSize == 0 || n == s.events {
			msgs := make([]kafka.Message, 0, len(last))
			for _, lm := range last {
				msgs = append(msgs, lm)
			}
			if err := r.CommitMessages(ctx, msgs...); err != nil {
				return ceilingResult{}, err
			}
		}
	}
	d := time.Since(start)
	return ceilingResult{rate: float64(n) / d.Seconds(), split: map[string]float64{
		"wall": d.Seconds(), "bench": cpuSeconds(os.Getpid()) - b0, "kafka": cpuSeconds(kafkaPid) - k0}}, nil
}

// readTopic reads every record of topic with its partition and offset.
func readTopic(ctx context.Context, s settings, topic string) ([][]kafka.Message, error) {
	parts := make([][]kafka.Message, s.partitions)
	total := 0
	for p := 0; p < s.partitions; p++ {
		c, err := kafka.DialLeader(ctx, "tcp", s.brokers[0], topic, p)
		if err != nil {
			return nil, err
		}
		end, err := c.ReadLastOffset()
		c.Close()
		if err != nil {
			return nil, err
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, Topic: topic, Partition: p, MaxBytes: 8 << 20, QueueCapacity: 5000, MaxWait: 100 * time.Millisecond})
		for int64(len(parts[p])) < end {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return nil, err
			}
			parts[p] = append(parts[p], m)
		}
		r.Close()
		total += len(parts[p])
	}
	if total != s.events {
		return nil, fmt.Errorf("read %d records, want %d", total, s.events)
	}
	return parts, nil
}

// sinkResult is what the sink-only bound measured.
type sinkResult struct {
	rate        float64
	split       map[string]float64
	batches     [][]*profile.Update // the folded batches it applied
	scriptCalls int64               // EVALSHA calls during the run
	scriptUsec  float64             // Redis's own µs per EVALSHA
}

// sinkOnly is the other bound: the project's sink applying the same events,
// decoded and folded beforehand, batched as the pipeline batches them
// (batch-size records across the partitions), one batch at a time.
// It also returns the folded batches (for the Redis floor) and what
// Redis itself spent per EVALSHA meanwhile (INFO commandstats, reset just
// before): the script alone, without the client's side.
func sinkOnly(ctx context.Context, s settings, rdb *redis.Client, topic, prefix string, pipe []consumer.BatchInfo) (sinkResult, error) {
	parts, err := readTopic(ctx, s, topic)
	if err != nil {
		return sinkResult{}, err
	}
	dec, err := profile.NewDecoder(decoderConfig())
	if err != nil {
		return sinkResult{}, err
	}
	groups, ok := pipelineBatches(parts, topic, pipe)
	if ok {
		logf("sink only: the pipeline's %d batches, record for record", len(groups))
	} else {
		// the pipeline's batches could not be read back: full batches of
		// chunks of each partition in turn
		groups = chunkBatches(parts, s.batchSize)
		logf("sink only: %d batches of partition chunks (the pipeline's could not be read back)", len(groups))
	}
	now := time.Now()
	batches := make([][]*profile.Update, 0, len(groups))
	scripts := 0
	for _, g := range groups {
		order := fold(dec, g, now)
		batches = append(batches, order)
		scripts += len(order)
	}
	logf("sink only: %.2f profile writes per record", float64(scripts)/float64(s.events))
	sk := sink.New(rdb, sink.Config{KeyPrefix: prefix, DedupeWindow: 24 * time.Hour, Now: s.sinkClock}, nil)
	if err := sk.Load(ctx); err != nil {
		return sinkResult{}, err
	}
	_, redisPid := servicePids(ctx, s)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		return sinkResult{}, err
	}
	r0, b0 := cpuSeconds(redisPid), cpuSeconds(os.Getpid())
	start := time.Now()
	for _, b := range batches {
		if err := sk.Apply(ctx, b); err != nil {
			return sinkResult{}, err
		}
	}
	d := time.Since(start)
	split := map[string]float64{"wall": d.Seconds(), "redis": cpuSeconds(redisPid) - r0, "bench": cpuSeconds(os.Getpid()) - b0}
	calls, usec := commandStat(ctx, rdb, "evalsha")
	return sinkResult{rate: float64(s.events) / d.Seconds(), split: split, batches: batches, scriptCalls: calls, scriptUsec: usec}, nil
}

// pipelineBatches rebuilds the pipeline's batches from the offset ranges
// it reported. It reports false unless they hold every record of the topic
// exactly once, each partition's ranges following one another.
func pipelineBatches(parts [][]kafka.Message, topic string, batches []consumer.BatchInfo) ([][]kafka.Message, bool) {
	var out [][]kafka.Message
	total, want := 0, 0
	for _, p := range parts {
		want += len(p)
	}
	seen := make([]int64, len(parts)) // next offset expected per partition
	for _, b := range batches {
		var g []kafka.Message
		for _, r := range b.Ranges {
			p := r.Partition
			if r.Topic != topic || p < 0 || p >= len(parts) || r.First != seen[p] || r.Last < r.First {
				return nil, false
			}
			msgs := parts[p]
			lo := sort.Search(len(msgs), func(k int) bool { return msgs[k].Offset >= r.First })
			hi := sort.Search(len(msgs), func(k int) bool { return msgs[k].Offset > r.Last })
			g = append(g, msgs[lo:hi]...)
			total += hi - lo
			seen[p] = r.Last + 1
		}
		out = append(out, g)
	}
	return out, total == want
}

// chunkBatches makes full batches of chunks of each partition in turn.
func chunkBatches(parts [][]kafka.Message, size int) [][]kafka.Message {
	per := max(size/len(parts), 1)
	pos := make([]int, len(parts))
	var out [][]kafka.Message
	for {
		var g []kafka.Message
		left := true
		for len(g) < size && left {
			left = false
			for p := range parts {
				n := min(per, len(parts[p])-pos[p], size-len(g))
				g = append(g, parts[p][pos[p]:pos[p]+n]...)
				pos[p] += n
				left = left || pos[p] < len(parts[p])
			}
		}
		if len(g) == 0 {
			return out
		}
		out = append(out, g)
	}
}

// dropPrefix deletes every key that starts with prefix and returns how
// many it deleted.
func dropPrefix(ctx context.Context, rdb *redis.Client, prefix string) (int, error) {
	n := 0
	iter := rdb.Scan(ctx, 0, prefix+"*", 5000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 5000 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	if len(keys) > 0 {
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			return n, err
		}
		n += len(keys)
	}
	return n, nil
}

func decoderConfig() profile.Config {
	c := profile.DefaultConfig()
	c.DefaultPhoneRegion = "IN"
	return c
}

// naive is what a typical first version does: one record at a time,
// FetchMessage, one script call, CommitMessages.
func naive(ctx context.Context, s settings, rdb *redis.Client, topic, group, prefix string) (float64, error) {
	dec, err := profile.NewDecoder(decoderConfig())
	if err != nil {
		return 0, err
	}
	sk := sink.New(rdb, sink.Config{KeyPrefix: prefix, DedupeWindow: 24 * time.Hour}, nil)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	start := time.Now()
	for n := 0; n < s.naiveEvents; n++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return 0, err
		}
		if ev, err := dec.Decode(m.Value, m.Time, time.Now()); err == nil && ev.Kind != profile.KindIgnored {
			u := profile.NewUpdate(ev.ProfileID)
			u.Add(ev, "naive:"+strconv.Itoa(m.Partition), m.Offset)
			if err := sk.Apply(ctx, []*profile.Update{u}); err != nil {
				return 0, err
			}
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return 0, err
		}
	}
	return float64(s.naiveEvents) / time.Since(start).Seconds(), nil
}
