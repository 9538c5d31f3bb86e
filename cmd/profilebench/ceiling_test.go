package main

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
)

// TestConsumeCeiling: each ceiling reads every record, commits every
// partition to its end after the batch's writes, writes the folded
// profiles' HSETs (and with dedupe one ZADD per profile with messageIds
// beside them) and leaves no key behind.
func TestConsumeCeiling(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "bench"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := settings{events: 3000, users: 200, partitions: 3, batchSize: 700, brokers: cl.ListenAddrs(), redisURL: "redis://" + mr.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	values := workload{events: s.events, users: s.users, seed: 1, base: time.Now().Add(-2 * time.Hour)}.generate()
	if err := produce(ctx, s.brokers, "bench", values); err != nil {
		t.Fatal(err)
	}
	parts, err := readTopic(ctx, s, "bench")
	if err != nil {
		t.Fatal(err)
	}
	// what the ceilings must write, whatever their batches: the profiles
	// the whole topic folds into (a batch writes a profile at most once)
	dec, err := profile.NewDecoder(decoderConfig())
	if err != nil {
		t.Fatal(err)
	}
	var all []kafka.Message
	for _, p := range parts {
		all = append(all, p...)
	}
	profiles, withIDs := 0, 0
	for _, u := range fold(dec, all, time.Now()) {
		if !u.Empty() {
			profiles++
		}
		for _, c := range u.Counts {
			if c.MessageID != "" {
				withIDs++
				break
			}
		}
	}
	w, err := kafkaconn.Config{Brokers: s.brokers}.NewOffsetWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	var store int
	for _, tc := range []struct {
		name   string
		rdb    *redis.Client
		dedupe bool
	}{{"decode", nil, false}, {"store", rdb, false}, {"dedupe", rdb, true}} {
		group := "ceiling-" + tc.name
		c, err := consumeCeiling(ctx, s, tc.rdb, "bench", group, tc.name+":", tc.dedupe)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.rate <= 0 || c.split["wall"] <= 0 {
			t.Errorf("%s: rate %v, wall %v", tc.name, c.rate, c.split["wall"])
		}
		offs, err := w.GroupOffsets(ctx, group, "bench")
		if err != nil || len(offs) != s.partitions || !kafkaconn.CaughtUp(offs) {
			t.Errorf("%s: the group's offsets %+v (%v), want every partition committed to its end", tc.name, offs, err)
		}
		switch tc.name {
		case "decode":
			if c.written != 0 {
				t.Errorf("decode wrote %d commands", c.written)
			}
		case "store":
			store = c.written
			if c.written < profiles {
				t.Errorf("store wrote %d HSETs, want at least one per profile (%d)", c.written, profiles)
			}
		case "dedupe":
			if c.written < store+withIDs {
				t.Errorf("dedupe wrote %d commands, want the %d HSETs and at least %d ZADDs", c.written, store, withIDs)
			}
		}
		if keys := mr.Keys(); len(keys) != 0 {
			t.Errorf("%s left %d keys, %q first", tc.name, len(keys), keys[0])
		}
	}
}

// TestDedupeBatch: one ZADD per profile, of the messageIds its events
// carried, scored by offset; none for a profile whose events carried none.
func TestDedupeBatch(t *testing.T) {
	a, b := profile.NewUpdate("u1"), profile.NewUpdate("anon:x")
	a.Counts = []profile.Count{{Offset: 4, MessageID: "m1"}, {Offset: 9}, {Offset: 12, MessageID: "m2"}}
	b.Counts = []profile.Count{{Offset: 5}}
	got := dedupeBatch("p:", []*profile.Update{a, b})
	if len(got) != 1 || len(got[0]) != 6 || got[0][0] != "zadd" || got[0][2] != int64(4) || got[0][3] != "m1" || got[0][4] != int64(12) || got[0][5] != "m2" {
		t.Fatalf("%v", got)
	}
}
