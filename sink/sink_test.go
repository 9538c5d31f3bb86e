package sink_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// redisForTest returns a client of the real Redis given by
// PROFILED_TEST_REDIS_URL, or of an in-process miniredis when none is
// given (the -short path), and a key prefix no other test uses.
func redisForTest(t *testing.T) (redis.UniversalClient, string, bool) {
	t.Helper()
	prefix := fmt.Sprintf("test-%s-%d:", strings.ReplaceAll(t.Name(), "/", "-"), rand.Int64())
	if os.Getenv(testenv.EnvRedisURL) != "" && !testing.Short() {
		return testenv.RealRedis(t), prefix, true
	}
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, prefix, false
}

func ev(kind profile.Kind, id string, ms int64, msgID string, fields ...string) profile.Event {
	e := profile.Event{Kind: kind, ProfileID: id, Time: ms, MessageID: msgID}
	for i := 0; i+1 < len(fields); i += 2 {
		e.Fields = append(e.Fields, profile.Field{Name: fields[i], Value: fields[i+1]})
	}
	return e
}

type rec struct {
	e      profile.Event
	src    string
	offset int64
}

// apply folds the records into one batch, as the consumer does, and
// applies it.
func apply(t *testing.T, s *sink.Sink, recs ...rec) sink.Result {
	t.Helper()
	res, err := s.ApplyCounted(context.Background(), batchOf(recs))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// batchOf folds records into updates the way the consumer does.
func batchOf(recs []rec) []*profile.Update {
	ups := map[string]*profile.Update{}
	var order []*profile.Update
	for _, r := range recs {
		u, ok := ups[r.e.ProfileID]
		if !ok {
			u = profile.NewUpdate(r.e.ProfileID)
			ups[r.e.ProfileID] = u
			order = append(order, u)
		}
		u.Add(r.e, r.src, r.offset)
	}
	return order
}

func hash(t *testing.T, c redis.UniversalClient, prefix, id string) map[string]string {
	t.Helper()
	h, err := c.HGetAll(context.Background(), sink.Key(prefix, id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const t0 = int64(1_764_000_000_000) // 2025-11-24

func TestFieldsLastWriterWinsAndTiesGoToGreaterValue(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+10, "", "email", "new@x.io", "city", "B"), "s:0", 1})
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0, "", "email", "old@x.io", "city", "Z"), "s:0", 2})
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+10, "", "city", "C"), "s:0", 3})
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+10, "", "city", "A"), "s:0", 4})
	// a byte-order tie that a locale-aware comparison would get wrong
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+20, "", "customer_type", "b"), "s:0", 5})
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+20, "", "customer_type", "B"), "s:0", 6})
	h := hash(t, c, prefix, "u1")
	if h["email"] != "new@x.io" || h["city"] != "C" || h["customer_type"] != "b" {
		t.Fatalf("got email=%q city=%q customer_type=%q, want new@x.io, C, b", h["email"], h["city"], h["customer_type"])
	}
	if _, ok := h["first_seen"]; ok {
		t.Fatal("identify-only profile has first_seen")
	}
	if h["app_launches"] != "0" || h["web_visits"] != "0" {
		t.Fatalf("counters = %q/%q, want 0/0 on every profile", h["app_launches"], h["web_visits"])
	}
}

func TestFirstAndLastSeenWithChannelTies(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0+5000, "m1"), "s:0", 1})
	apply(t, s, rec{ev(profile.KindWebVisit, "u1", t0+1000, "m2"), "s:0", 2})
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0+1000, "m3"), "s:0", 3})
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0+9000, "m4"), "s:0", 4})
	apply(t, s, rec{ev(profile.KindWebVisit, "u1", t0+9000, "m5"), "s:0", 5})
	apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+99000, "m6", "city", "X"), "s:0", 6})
	h := hash(t, c, prefix, "u1")
	want := map[string]string{
		"first_seen": profile.FormatTime(t0 + 1000), "first_seen_channel": "web",
		"last_seen": profile.FormatTime(t0 + 9000), "last_seen_channel": "web",
		"app_launches": "3", "web_visits": "2",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

func TestRedeliveredRecordsNeverCountTwice(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: 0}, nil) // no messageId help
	batch := []rec{
		{ev(profile.KindAppLaunch, "u1", t0, ""), "topicA:0", 10},
		{ev(profile.KindAppLaunch, "u1", t0+1, ""), "topicA:0", 11},
		{ev(profile.KindWebVisit, "u1", t0+2, ""), "topicA:1", 10},
	}
	r := apply(t, s, batch...)
	if r.Launches != 2 || r.Visits != 1 || r.Created != 1 {
		t.Fatalf("first apply: %+v", r)
	}
	// a retried batch, a rebalance replay and a late straggler
	r = apply(t, s, batch...)
	r2 := apply(t, s, batch[0])
	if r.Launches+r.Visits+r2.Launches+r2.Visits != 0 || r.DupRedelivered != 3 {
		t.Fatalf("redelivery counted: %+v %+v", r, r2)
	}
	// a new record of the same log counts; the same offset of another log
	// (a recreated topic has a new id) counts too
	r = apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0+3, ""), "topicA:0", 12},
		rec{ev(profile.KindAppLaunch, "u1", t0+4, ""), "topicB:0", 10})
	if r.Launches != 2 {
		t.Fatalf("new records: %+v", r)
	}
	if h := hash(t, c, prefix, "u1"); h["app_launches"] != "4" || h["web_visits"] != "1" {
		t.Fatalf("counts %s/%s, want 4/1", h["app_launches"], h["web_visits"])
	}
}

func TestMessageIDDedupeWindow(t *testing.T) {
	c, prefix, real := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
	now := time.Now()
	s.SetNow(func() time.Time { return now })
	r := apply(t, s,
		rec{ev(profile.KindAppLaunch, "u1", t0, "dup"), "s:0", 1},
		rec{ev(profile.KindAppLaunch, "u1", t0+5, "dup"), "s:0", 2}, // same batch
		rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 3},      // no messageId: never deduplicated
		rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 4})
	if r.Launches != 3 || r.DupMessageID != 1 {
		t.Fatalf("same batch: %+v", r)
	}
	now = now.Add(59 * time.Minute)
	if r = apply(t, s, rec{ev(profile.KindWebVisit, "u1", t0, "dup"), "s:1", 1}); r.Visits != 0 || r.DupMessageID != 1 {
		t.Fatalf("inside window: %+v", r)
	}
	now = now.Add(2 * time.Minute) // the first sighting is now 61 minutes old
	if r = apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, "dup"), "s:0", 9}); r.Launches != 1 {
		t.Fatalf("after window: %+v", r)
	}
	// applied again: its window starts again now, also for a copy in the
	// same millisecond (the same score as the one it would add)
	if r = apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, "dup"), "s:0", 10}); r.Launches != 0 || r.DupMessageID != 1 {
		t.Fatalf("same millisecond, after its new application: %+v", r)
	}
	now = now.Add(59 * time.Minute)
	if r = apply(t, s, rec{ev(profile.KindWebVisit, "u1", t0, "dup"), "s:1", 2}, rec{ev(profile.KindWebVisit, "u1", t0, "new"), "s:1", 3}); r.Visits != 1 || r.DupMessageID != 1 {
		t.Fatalf("inside the new window, beside a new messageId: %+v", r)
	}
	if real {
		ttl, err := c.PTTL(context.Background(), sink.Key(prefix, "u1")+":d").Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("dedupe key ttl = %v (%v), want (0, 1h]", ttl, err)
		}
	}
}

// TestMessageIDRepeatsWithinABatch: a messageId that two counts of one
// update carry counts once; delivered again, the repeat is a redelivery,
// not a messageId duplicate, and a new record that repeats it after the
// watermark is a messageId duplicate. Also when the batch's first copy was
// delivered again and the second is new.
func TestMessageIDRepeatsWithinABatch(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
	b1 := []rec{
		{ev(profile.KindAppLaunch, "u1", t0, "x"), "s:0", 1},
		{ev(profile.KindWebVisit, "u1", t0+1, "y"), "s:0", 2},
		{ev(profile.KindAppLaunch, "u1", t0+2, "x"), "s:0", 3}, // repeats x
		{ev(profile.KindWebVisit, "u1", t0+3, "x"), "s:0", 4},  // and again, as a visit
		{ev(profile.KindAppLaunch, "u1", t0+4, "z"), "s:0", 5},
	}
	if r := apply(t, s, b1...); r.Launches != 2 || r.Visits != 1 || r.DupMessageID != 2 || r.DupRedelivered != 0 {
		t.Fatalf("first delivery: %+v", r)
	}
	if r := apply(t, s, b1...); r.Launches+r.Visits != 0 || r.DupMessageID != 0 || r.DupRedelivered != 5 {
		t.Fatalf("delivered again: %+v", r)
	}
	// offsets 3 and 4 again, with a new record repeating x and a new one
	r := apply(t, s, b1[2], b1[3],
		rec{ev(profile.KindAppLaunch, "u1", t0+5, "x"), "s:0", 6},
		rec{ev(profile.KindAppLaunch, "u1", t0+6, "w"), "s:0", 7})
	if r.Launches != 1 || r.Visits != 0 || r.DupMessageID != 1 || r.DupRedelivered != 2 {
		t.Fatalf("redelivered repeats beside new records: %+v", r)
	}
	// new records, one of a launch's and one of a visit's messageId known
	// from the batches before
	r = apply(t, s,
		rec{ev(profile.KindAppLaunch, "u1", t0+7, "z"), "s:0", 8},
		rec{ev(profile.KindAppLaunch, "u1", t0+8, "v"), "s:0", 9},
		rec{ev(profile.KindWebVisit, "u1", t0+9, "y"), "s:0", 10},
		rec{ev(profile.KindWebVisit, "u1", t0+10, "u"), "s:0", 11},
		rec{ev(profile.KindWebVisit, "u1", t0+11, ""), "s:0", 12})
	if r.Launches != 1 || r.Visits != 2 || r.DupMessageID != 2 || r.DupRedelivered != 0 {
		t.Fatalf("new records with known messageIds: %+v", r)
	}
	h := hash(t, c, prefix, "u1")
	if h["app_launches"] != "4" || h["web_visits"] != "3" || h["last_seen"] != profile.FormatTime(t0+11) {
		t.Fatalf("u1 = %v", h)
	}
	// the new messageIds were remembered: again in a later batch, they
	// count nothing
	r = apply(t, s,
		rec{ev(profile.KindAppLaunch, "u1", t0+12, "v"), "s:0", 13},
		rec{ev(profile.KindWebVisit, "u1", t0+13, "u"), "s:0", 14})
	if r.Launches+r.Visits != 0 || r.DupMessageID != 2 {
		t.Fatalf("the messageIds of the batch before: %+v", r)
	}
}

func TestDedupeWindowZeroTurnsMessageIDDedupeOff(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	r := apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, "m"), "s:0", 1}, rec{ev(profile.KindAppLaunch, "u1", t0, "m"), "s:0", 2})
	if r.Launches != 2 {
		t.Fatalf("%+v", r)
	}
	if n, _ := c.Exists(context.Background(), sink.Key(prefix, "u1")+":d").Result(); n != 0 {
		t.Fatal("dedupe state written with the window off")
	}
}

func TestCustomTraitsKeepTheSmallestKeys(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	// 300 distinct trait keys over several calls, largest first
	evicted := 0
	for b := 0; b < 3; b++ {
		var fields []string
		for i := 0; i < 100; i++ {
			fields = append(fields, fmt.Sprintf("trait.k%03d", 299-(b*100+i)), "v")
		}
		evicted += apply(t, s, rec{ev(profile.KindIdentify, "u1", t0+int64(b), "", fields...), "s:0", int64(b)}).Evicted
	}
	if evicted != 300-profile.MaxTraits {
		t.Errorf("%d evictions counted, want %d", evicted, 300-profile.MaxTraits)
	}
	h := hash(t, c, prefix, "u1")
	n := 0
	for k := range h {
		if strings.HasPrefix(k, "trait.") {
			n++
			if k > "trait.k255" {
				t.Errorf("kept %s, beyond the 256 smallest", k)
			}
		}
	}
	if n != profile.MaxTraits {
		t.Fatalf("%d traits kept, want %d", n, profile.MaxTraits)
	}
}

func TestScriptSurvivesScriptFlush(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 1})
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	r := apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 2})
	if r.Launches != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v", r)
	}
	// a batch of several pipelines (runChunk calls each), every one of
	// them answered NOSCRIPT at first
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	var recs []rec
	for i := range 1300 {
		recs = append(recs, rec{ev(profile.KindWebVisit, fmt.Sprint("v", i), t0, fmt.Sprint("m", i)), "s:0", int64(10 + i)})
	}
	if r = apply(t, s, recs...); r.Visits != 1300 || r.Created != 1300 {
		t.Fatalf("1,300 profiles after SCRIPT FLUSH: %+v", r)
	}
	if h := hash(t, c, prefix, "v1299"); h["web_visits"] != "1" {
		t.Fatalf("v1299 = %v", h)
	}
}

// TestChunksKeepTheirArguments applies a batch of several pipelines whose
// arguments are built while the chunk before them runs (runAll): every
// profile must hold its own values, not those of another chunk's call.
func TestChunksKeepTheirArguments(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
	const n = 1700 // four chunks
	var recs []rec
	for i := range n {
		recs = append(recs, rec{ev(profile.KindWebVisit, fmt.Sprint("c", i), t0+int64(i), fmt.Sprint("m", i),
			"city", fmt.Sprint("city-", i), "trait.n", strconv.Itoa(i)), "s:0", int64(i)})
	}
	if r := apply(t, s, recs...); r.Visits != n || r.Created != n {
		t.Fatalf("%d profiles: %+v", n, r)
	}
	for i := range n {
		h := hash(t, c, prefix, fmt.Sprint("c", i))
		if h["city"] != fmt.Sprint("city-", i) || h["trait.n"] != strconv.Itoa(i) || h["first_seen"] != profile.FormatTime(t0+int64(i)) {
			t.Fatalf("c%d = %v", i, h)
		}
	}
}

func TestCreatedAndUpdatedAt(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	now := time.Date(2026, 11, 28, 9, 15, 2, 123_000_000, time.UTC)
	s.SetNow(func() time.Time { return now })
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 1})
	now = now.Add(time.Minute)
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 1}) // redelivered: no change
	h := hash(t, c, prefix, "u1")
	if h["created_at"] != "2026-11-28T09:15:02.123Z" || h["updated_at"] != h["created_at"] {
		t.Fatalf("created_at=%s updated_at=%s", h["created_at"], h["updated_at"])
	}
	apply(t, s, rec{ev(profile.KindAppLaunch, "u1", t0, ""), "s:0", 2})
	h = hash(t, c, prefix, "u1")
	if h["updated_at"] != "2026-11-28T09:16:02.123Z" || h["created_at"] > h["updated_at"] {
		t.Fatalf("created_at=%s updated_at=%s", h["created_at"], h["updated_at"])
	}
}

// TestScriptAgreesWithGoFold applies random events to Redis in random
// batches and orders, with redeliveries, and checks the stored profile
// against the pure fold of the distinct events: the Lua merge and the Go
// merge are the same function.
func TestScriptAgreesWithGoFold(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	rng := rand.New(rand.NewPCG(7, 11))
	for round := 0; round < 20; round++ {
		id := "p" + strconv.Itoa(round)
		var recs []rec
		for i := 0; i < 60; i++ {
			kind := []profile.Kind{profile.KindAppLaunch, profile.KindWebVisit, profile.KindIdentify}[rng.IntN(3)]
			var fields []string
			for _, f := range []string{"email", "city", "customer_type", "trait.a", "trait.b", "coordinates"} {
				if rng.IntN(3) == 0 {
					v := string(rune('a'+rng.IntN(4))) + string(rune('A'+rng.IntN(3)))
					if f == "coordinates" {
						v = fmt.Sprintf("%d,%d", rng.IntN(3), rng.IntN(3))
					}
					fields = append(fields, f, v)
				}
			}
			msg := ""
			if rng.IntN(2) == 0 {
				msg = "m" + kind.String() + strconv.Itoa(rng.IntN(20)) // a producer duplicate repeats the whole event kind
			}
			recs = append(recs, rec{ev(kind, id, t0+int64(rng.IntN(8)), msg, fields...), "src:" + strconv.Itoa(i%2), int64(i)})
		}
		want := profile.NewUpdate(id)
		seenMsg := map[string]bool{}
		launches, visits := 0, 0
		for _, r := range recs {
			want.Add(r.e, r.src, r.offset)
			if r.e.Kind == profile.KindIdentify {
				continue
			}
			if r.e.MessageID != "" && seenMsg[r.e.MessageID] {
				continue
			}
			seenMsg[r.e.MessageID] = r.e.MessageID != ""
			if r.e.Kind == profile.KindAppLaunch {
				launches++
			} else {
				visits++
			}
		}
		s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
		// per log, records arrive in offset order, in batches of random
		// size, with whole batches delivered again
		var logs [2][]rec
		for _, r := range recs {
			i := 0
			if r.src == "src:1" {
				i = 1
			}
			logs[i] = append(logs[i], r)
		}
		pos := [2]int{}
		for pos[0] < len(logs[0]) || pos[1] < len(logs[1]) {
			var batch []rec
			for l := 0; l < 2; l++ {
				n := min(rng.IntN(8), len(logs[l])-pos[l])
				batch = append(batch, logs[l][pos[l]:pos[l]+n]...)
				if rng.IntN(4) == 0 && pos[l] > 0 { // replay from an earlier offset
					back := rng.IntN(pos[l])
					batch = append(batch, logs[l][back:pos[l]]...)
				}
				pos[l] += n
			}
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			if len(batch) > 0 {
				apply(t, s, batch...)
			}
		}
		h := hash(t, c, prefix, id)
		for name, f := range want.Fields {
			if name == "coordinates" {
				if got := h["latitude"] + "," + h["longitude"]; got != f.Value {
					t.Fatalf("round %d: coordinates = %q, want %q", round, got, f.Value)
				}
				continue
			}
			if h[name] != f.Value {
				t.Fatalf("round %d: %s = %q, want %q", round, name, h[name], f.Value)
			}
		}
		if !want.First.IsZero() {
			if h["first_seen"] != profile.FormatTime(want.First.Time) || h["first_seen_channel"] != want.First.Channel ||
				h["last_seen"] != profile.FormatTime(want.Last.Time) || h["last_seen_channel"] != want.Last.Channel {
				t.Fatalf("round %d: seen = %v, want %+v %+v", round, h, want.First, want.Last)
			}
		}
		if h["app_launches"] != strconv.Itoa(launches) || h["web_visits"] != strconv.Itoa(visits) {
			t.Fatalf("round %d: counts %s/%s, want %d/%d", round, h["app_launches"], h["web_visits"], launches, visits)
		}
	}
}
