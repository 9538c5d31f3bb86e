package main

// The ceilings: raw consume plus the least that profiled must do with each
// record, so that the pipeline's distance from raw consume can be split
// into what decoding costs and what storing costs.

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// ceilingResult is what one ceiling run measured.
type ceilingResult struct {
	rate    float64
	split   map[string]float64 // CPU seconds: bench, kafka, redis; and wall
	written int                // commands written: HSETs, and with dedupe ZADDs
}

// perMillion is a process's CPU seconds per million records.
func (c ceilingResult) perMillion(who string, events int) float64 {
	return c.split[who] / float64(max(events, 1)) * 1e6
}

// fold decodes msgs and folds them into one update per profile, in the
// order the profiles first appear, as a batch of the pipeline is folded.
// Records the decoder rejects or ignores are left out.
func fold(dec *profile.Decoder, msgs []kafka.Message, now time.Time) []*profile.Update {
	ups := map[string]*profile.Update{}
	var order []*profile.Update
	for _, m := range msgs {
		ev, err := dec.Decode(m.Value, m.Time, now)
		if err != nil || ev.Kind == profile.KindIgnored {
			continue
		}
		u, ok := ups[ev.ProfileID]
		if !ok {
			u = profile.NewUpdate(ev.ProfileID)
			ups[ev.ProfileID] = u
			order = append(order, u)
		}
		u.Add(ev, "bench:"+strconv.Itoa(m.Partition), m.Offset)
	}
	return order
}

// consumeCeiling is raw consume (a fresh group, a commit per batch of
// s.batchSize records) plus the least profiled must do with every record:
// decode it with profiled's decoder and fold each batch into one update per
// profile, on one goroutine per core (profiled decodes on one). With rdb
// set, each folded batch's resulting fields also go to Redis as the
// floor's plain pipelined HSETs (prefix, removed afterwards), on a
// goroutine of its own as profiled's writer overlaps its reading, and each
// batch is committed after its write; with dedupe as well, one ZADD per
// profile of its messageIds (dedupeBatch), the least the contract's
// dedupe needs, reading nothing back. Nothing more: no merge with what
// Redis holds, no links, no watermarks, no dead letters, no metrics. No
// implementation of the contract on this reader, decoder and Redis can be
// faster than the dedupe ceiling, so its ratio to raw consume bounds
// ratio_vs_raw. GOGC is 200 meanwhile, as profiled sets it.
func consumeCeiling(ctx context.Context, s settings, rdb *redis.Client, topic, group, prefix string, dedupe bool) (ceilingResult, error) {
	workers := runtime.GOMAXPROCS(0)
	decs := make([]*profile.Decoder, workers)
	for i := range decs {
		var err error
		if decs[i], err = profile.NewDecoder(decoderConfig()); err != nil {
			return ceilingResult{}, err
		}
	}
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	kafkaPid, redisPid := servicePids(ctx, s)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: s.batchSize, StartOffset: kafka.FirstOffset})
	defer r.Close()

	type batch struct {
		msgs  []kafka.Message
		ups   []*profile.Update
		last  []kafka.Message // each partition's last record, to commit
		ready chan struct{}   // closed once ups is folded
	}
	// Reading; decoding and folding on one goroutine per core, each batch
	// whole on one of them; writing and committing the batches in order.
	folds, writes := make(chan *batch, workers), make(chan *batch, workers)
	for _, dec := range decs {
		go func() {
			for b := range folds {
				b.ups, b.msgs = fold(dec, b.msgs, time.Now()), nil
				close(b.ready)
			}
		}()
	}
	werr := make(chan error, 1)
	written := 0
	go func() {
		var err error
		for b := range writes {
			<-b.ready
			if err != nil {
				continue
			}
			if rdb != nil {
				cmds := floorBatch(prefix, b.ups)
				if dedupe {
					cmds = append(cmds, dedupeBatch(prefix, b.ups)...)
				}
				if len(cmds) > 0 {
					p := rdb.Pipeline()
					for _, c := range cmds {
						p.Do(ctx, c...)
					}
					written += len(cmds)
					_, err = p.Exec(ctx)
				}
			}
			if err == nil {
				err = r.CommitMessages(ctx, b.last...)
			}
		}
		werr <- err
	}()
	stop := func() error {
		close(folds)
		close(writes)
		return <-werr
	}

	b0, k0, r0 := cpuSeconds(os.Getpid()), cpuSeconds(kafkaPid), cpuSeconds(redisPid)
	start := time.Now()
	msgs := make([]kafka.Message, 0, s.batchSize)
	n := 0
	for n < s.events {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			_ = stop()
			return ceilingResult{}, err
		}
		n++
		msgs = append(msgs, m)
		if len(msgs) == s.batchSize || n == s.events {
			last := map[int]kafka.Message{}
			for _, m := range msgs {
				last[m.Partition] = m
			}
			b := &batch{msgs: msgs, ready: make(chan struct{})}
			for _, m := range last {
				b.last = append(b.last, m)
			}
			writes <- b
			folds <- b
			msgs = make([]kafka.Message, 0, s.batchSize)
		}
	}
	if err := stop(); err != nil {
		return ceilingResult{}, err
	}
	d := time.Since(start)
	c := ceilingResult{rate: float64(n) / d.Seconds(), written: written, split: map[string]float64{
		"wall": d.Seconds(), "bench": cpuSeconds(os.Getpid()) - b0,
		"kafka": cpuSeconds(kafkaPid) - k0, "redis": cpuSeconds(redisPid) - r0}}
	if rdb != nil {
		if _, err := dropPrefix(ctx, rdb, prefix); err != nil {
			return c, err
		}
	}
	return c, nil
}

// dedupeBatch is one ZADD per profile of a folded batch: the messageIds of
// its events, scored by offset, into a set beside the profile.
func dedupeBatch(prefix string, b []*profile.Update) [][]any {
	var cmds [][]any
	for _, u := range b {
		args := make([]any, 0, 2+2*len(u.Counts))
		args = append(args, "zadd", sink.Key(prefix, u.ProfileID)+":d")
		for _, c := range u.Counts {
			if c.MessageID != "" {
				args = append(args, c.Offset, c.MessageID)
			}
		}
		if len(args) > 2 {
			cmds = append(cmds, args)
		}
	}
	return cmds
}
