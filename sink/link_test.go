package sink_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

func anonEv(kind profile.Kind, anon string, ms int64, mid string, fields ...string) profile.Event {
	e := ev(kind, "anon:"+anon, ms, mid, fields...)
	e.Fields = append(e.Fields, profile.Field{Name: profile.FieldAnonymousID, Value: anon})
	return e
}

func userEv(kind profile.Kind, user, anon string, ms int64, mid string, fields ...string) profile.Event {
	e := ev(kind, user, ms, mid, fields...)
	e.Fields = append(e.Fields, profile.Field{Name: profile.FieldCustomerID, Value: user})
	if anon != "" {
		e.Fields = append(e.Fields, profile.Field{Name: profile.FieldAnonymousID, Value: anon})
		e.LinkAnonID = anon
	}
	return e
}

func aliasEv(user, anon string, ms int64) profile.Event {
	return profile.Event{Kind: profile.KindAlias, ProfileID: user, Time: ms, LinkAnonID: anon}
}

// fourSteps makes newSink's sinks link every anonymous id by the four
// steps of link.go, also on one server (where an id with no history is
// otherwise linked in one step).
var fourSteps bool

func newSink(c redis.UniversalClient, prefix string, cfg sink.Config) *sink.Sink {
	cfg.KeyPrefix = prefix
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = time.Hour
	}
	s := sink.New(c, cfg, nil)
	s.SetNow(func() time.Time { return time.UnixMilli(base + 3_600_000) })
	if fourSteps {
		s.SetOneNode(false)
	}
	return s
}

const base = int64(1_764_000_000_000)

func hget(t *testing.T, c redis.UniversalClient, key string) map[string]string {
	t.Helper()
	h, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func exists(t *testing.T, c redis.UniversalClient, key string) bool {
	t.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// The journey of the issue: anonymous visits, a sign-up that carries both
// ids (on another log), launches, then a late anonymous event.
func TestLinkAnonymousHistoryJoinsTheUser(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	apply(t, s,
		rec{anonEv(profile.KindWebVisit, "a1", base+1000, "m1", "city", "Pune"), "P", 10},
		rec{anonEv(profile.KindWebVisit, "a1", base+2000, "m2"), "P", 11},
	)
	if !exists(t, c, sink.Key(prefix, "anon:a1")) {
		t.Fatal("anonymous profile not written")
	}
	res := apply(t, s, rec{userEv(profile.KindIdentify, "u1", "a1", base+3000, "m3", "email", "x@example.com"), "Q", 5})
	if res.Links[sink.LinkLinked] != 1 {
		t.Fatalf("links = %v, want one linked", res.Links)
	}
	apply(t, s, rec{userEv(profile.KindAppLaunch, "u1", "", base+4000, "m4"), "Q", 6})
	res = apply(t, s, rec{anonEv(profile.KindWebVisit, "a1", base+500, "m5"), "P", 12}) // late, and earliest
	if res.Routed != 1 {
		t.Fatalf("routed = %d, want 1", res.Routed)
	}
	if exists(t, c, sink.Key(prefix, "anon:a1")) {
		t.Fatal("anonymous profile still there after the link")
	}
	h := hget(t, c, sink.Key(prefix, "u1"))
	want := map[string]string{
		"web_visits": "3", "app_launches": "1", "city": "Pune", "email": "x@example.com",
		"customer_id": "u1", "anonymous_id": "a1",
		"first_seen": profile.FormatTime(base + 500), "first_seen_channel": "web",
		"last_seen": profile.FormatTime(base + 4000), "last_seen_channel": "app",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q (profile %v)", k, h[k], v, h)
		}
	}
	if owner, _ := c.Get(context.Background(), sink.LinkKey(prefix, "a1")).Result(); owner != "u1" {
		t.Errorf("link key holds %q, want u1", owner)
	}
	if l := hget(t, c, sink.LinksKey(prefix, "u1")); len(l) != 1 || l["a1"] != "f" {
		t.Errorf("links of u1 = %v, want a1:f", l)
	}
	for _, suffix := range []string{":snap", ":m", ":d"} {
		if exists(t, c, sink.Key(prefix, "anon:a1")+suffix) {
			t.Errorf("anonymous bookkeeping %s left after the link", suffix)
		}
	}
	// redelivery across the link: A's records, counted in the fold or
	// routed since, never count again
	apply(t, s,
		rec{anonEv(profile.KindWebVisit, "a1", base+1000, "m1", "city", "Pune"), "P", 10},
		rec{anonEv(profile.KindWebVisit, "a1", base+500, "m5"), "P", 12},
	)
	// and a fresh process (no cache) too
	apply(t, newSink(c, prefix, sink.Config{}), rec{anonEv(profile.KindWebVisit, "a1", base+2000, "m2"), "P", 11})
	if h := hget(t, c, sink.Key(prefix, "u1")); h["web_visits"] != "3" {
		t.Fatalf("web_visits = %s after redelivery, want 3", h["web_visits"])
	}
}

func TestLinkByAliasCreatesNoProfileByItself(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	res := apply(t, s, rec{aliasEv("u2", "a2", base), "Q", 1})
	if res.Links[sink.LinkLinked] != 1 || res.Created != 0 {
		t.Fatalf("alias alone: %+v", res)
	}
	if exists(t, c, sink.Key(prefix, "u2")) || exists(t, c, sink.Key(prefix, "anon:a2")) {
		t.Fatal("an alias alone created a profile")
	}
	apply(t, s, rec{anonEv(profile.KindAppLaunch, "a2", base+10, "m1"), "P", 1})
	if exists(t, c, sink.Key(prefix, "anon:a2")) {
		t.Fatal("an event of a linked anonymous id made its own profile")
	}
	if h := hget(t, c, sink.Key(prefix, "u2")); h["app_launches"] != "1" || h["anonymous_id"] != "a2" || h["customer_id"] != "u2" {
		t.Fatalf("u2 = %v", h)
	}
}

func TestLinkConflictChangesNothingAboutTheAnonymousID(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	apply(t, s, rec{anonEv(profile.KindWebVisit, "a3", base, "m1"), "P", 1})
	apply(t, s, rec{userEv(profile.KindIdentify, "u3", "a3", base+1, "m2"), "Q", 1})
	for _, fresh := range []bool{false, true} { // known to the process, and not
		s2 := s
		if fresh {
			s2 = newSink(c, prefix, sink.Config{})
		}
		res := apply(t, s2, rec{userEv(profile.KindAppLaunch, "v3", "a3", base+2, fmt.Sprint("m3", fresh)), "Q", 2})
		if res.Links[sink.LinkConflict] != 1 {
			t.Fatalf("fresh=%v: links %v, want a conflict", fresh, res.Links)
		}
	}
	if owner, _ := c.Get(context.Background(), sink.LinkKey(prefix, "a3")).Result(); owner != "u3" {
		t.Fatalf("a3 linked to %q, want u3", owner)
	}
	if l := hget(t, c, sink.LinksKey(prefix, "v3")); len(l) != 0 {
		t.Fatalf("v3 kept a reservation: %v", l)
	}
	if h := hget(t, c, sink.Key(prefix, "v3")); h["app_launches"] != "1" || h["anonymous_id"] != "a3" {
		t.Fatalf("the conflicting event did not apply to v3 as usual: %v", h)
	}
	if h := hget(t, c, sink.Key(prefix, "u3")); h["web_visits"] != "1" || h["app_launches"] != "0" {
		t.Fatalf("u3 = %v", h)
	}
}

func TestLinkLimitLeavesTheAnonymousIDFree(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{MaxLinkedIDs: 2})
	for i := range 3 {
		a := fmt.Sprint("b", i)
		apply(t, s, rec{anonEv(profile.KindWebVisit, a, base, "v"+a), "P", int64(i)})
		res := apply(t, s, rec{userEv(profile.KindWebVisit, "bot", a, base+1, "w"+a), "Q", int64(i)})
		want := sink.LinkLinked
		if i == 2 {
			want = sink.LinkLimit
		}
		if res.Links[want] != 1 {
			t.Fatalf("link %d: %v, want %s", i, res.Links, want)
		}
	}
	if !exists(t, c, sink.Key(prefix, "anon:b2")) || exists(t, c, sink.LinkKey(prefix, "b2")) {
		t.Fatal("the refused id is not left as it was")
	}
	if h := hget(t, c, sink.Key(prefix, "bot")); h["web_visits"] != "5" { // 3 own + 2 folded
		t.Fatalf("bot = %v", h)
	}
	// the refused id is free for another user
	res := apply(t, s, rec{userEv(profile.KindIdentify, "human", "b2", base+2, "x"), "Q", 9})
	if res.Links[sink.LinkLinked] != 1 {
		t.Fatalf("b2 to another user: %v", res.Links)
	}
}

// messageId dedupe is per person: a copy applied under A and another
// under U count once, whichever came first.
func TestLinkMessageIDDedupeSpansThePerson(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	apply(t, s,
		rec{anonEv(profile.KindAppLaunch, "a4", base, "dup1"), "P", 1},
		rec{userEv(profile.KindAppLaunch, "u4", "", base, "dup1"), "Q", 1}, // the same event, signed in
		rec{anonEv(profile.KindWebVisit, "a4", base+1, "dup2"), "P", 2},
	)
	apply(t, s, rec{aliasEv("u4", "a4", base+2), "Q", 2})
	res := apply(t, s, rec{userEv(profile.KindWebVisit, "u4", "", base+1, "dup2"), "Q", 3}) // after the link
	if res.DupMessageID != 1 {
		t.Fatalf("copy after the link: %+v", res)
	}
	if h := hget(t, c, sink.Key(prefix, "u4")); h["app_launches"] != "1" || h["web_visits"] != "1" {
		t.Fatalf("u4 = %v, want one launch and one visit", h)
	}
}

// A crash (here: an error) after any step of a batch that links leaves a
// state from which delivering the same batch again completes the link,
// with nothing lost and nothing counted twice.
func TestLinkCrashBetweenEverySteps(t *testing.T) {
	for step := 1; step <= 4; step++ {
		for _, mids := range []bool{true, false} { // without messageIds, only the link state guards the fold
			t.Run(fmt.Sprintf("after step %d, messageIds %v", step, mids), func(t *testing.T) {
				c, prefix, _ := redisForTest(t)
				crashBetweenSteps(t, c, prefix, step, mids)
			})
		}
	}
}

func crashBetweenSteps(t *testing.T, c redis.UniversalClient, prefix string, step int, mids bool) {
	s := newSink(c, prefix, sink.Config{})
	mid := func(m string) string {
		if mids {
			return m
		}
		return ""
	}
	pre := []rec{
		{anonEv(profile.KindWebVisit, "a5", base, mid("m1")), "P", 1},
		{anonEv(profile.KindAppLaunch, "a5", base+1, mid("m2")), "P", 2},
	}
	apply(t, s, pre...)
	batch := []rec{
		{userEv(profile.KindIdentify, "u5", "a5", base+2, mid("m3")), "Q", 1},
		{anonEv(profile.KindWebVisit, "a5", base+3, mid("m4")), "P", 3},
	}
	crash := errors.New("crash")
	s.SetStep(func(n int) error {
		if n == step {
			return crash
		}
		return nil
	})
	if _, err := s.ApplyCounted(context.Background(), batchOf(batch)); !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the crash", err)
	}
	// the process died: a new one gets the batch again
	apply(t, newSink(c, prefix, sink.Config{}), batch...)
	apply(t, newSink(c, prefix, sink.Config{}), append(pre, batch...)...)
	h := hget(t, c, sink.Key(prefix, "u5"))
	if h["web_visits"] != "2" || h["app_launches"] != "1" {
		t.Fatalf("u5 = %v, want 2 visits and 1 launch", h)
	}
	for _, suffix := range []string{"", ":snap", ":m", ":d"} {
		if exists(t, c, sink.Key(prefix, "anon:a5")+suffix) {
			t.Errorf("anon:a5%s left", suffix)
		}
	}
}

// Pending reservations (a crash right after step 1, and the batch never
// delivered again to that process) are completed by any later event of the
// user.
func TestLinkPendingReservationCompletedByALaterEventOfTheUser(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	apply(t, s, rec{anonEv(profile.KindWebVisit, "a6", base, "m1"), "P", 1})
	s.SetStep(func(n int) error { return errors.New("crash") })
	if _, err := s.ApplyCounted(context.Background(), batchOf([]rec{{aliasEv("u6", "a6", base), "Q", 1}})); err == nil {
		t.Fatal("no crash")
	}
	res := apply(t, newSink(c, prefix, sink.Config{}), rec{userEv(profile.KindAppLaunch, "u6", "", base+5, "m2"), "Q", 2})
	if res.Links[sink.LinkLinked] != 1 {
		t.Fatalf("links = %v", res.Links)
	}
	if h := hget(t, c, sink.Key(prefix, "u6")); h["web_visits"] != "1" || h["app_launches"] != "1" {
		t.Fatalf("u6 = %v", h)
	}
}

// One busy profile's share of a batch at the largest batch size must not
// make a script fail (Lua's unpack has a limit of a few thousand values).
func TestOneBusyProfileAtTheLargestBatch(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	var recs []rec
	for i := range 100_000 {
		recs = append(recs, rec{userEv(profile.KindWebVisit, "bot", "", base+int64(i%1000), fmt.Sprint("m", i)), "P", int64(i)})
	}
	recs = append(recs, rec{userEv(profile.KindWebVisit, "innocent", "", base, "i"), "P", 100_000})
	apply(t, s, recs...)
	if h := hget(t, c, sink.Key(prefix, "bot")); h["web_visits"] != "100000" {
		t.Fatalf("bot visits = %s", h["web_visits"])
	}
	if h := hget(t, c, sink.Key(prefix, "innocent")); h["web_visits"] != "1" {
		t.Fatalf("innocent = %v", h)
	}
	if n, _ := c.ZCard(context.Background(), sink.Key(prefix, "bot")+":d").Result(); n != sink.DefaultMaxDedupeIDs {
		t.Fatalf("bot remembers %d messageIds, want the cap %d", n, sink.DefaultMaxDedupeIDs)
	}
}

func TestDedupeIDsCappedOldestFirst(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{MaxDedupeIDs: 10})
	now := base + 3_600_000
	for i := range 15 {
		s.SetNow(func() time.Time { return time.UnixMilli(now + int64(i)) })
		res := apply(t, s, rec{userEv(profile.KindWebVisit, "u7", "", base, fmt.Sprint("m", i)), "P", int64(i)})
		if want := min(max(i-9, 0), 1); res.Forgotten != want {
			t.Fatalf("visit %d: forgotten %d, want %d", i, res.Forgotten, want)
		}
	}
	// the highest score is the oldest (see apply.lua's applied)
	ids, _ := c.ZRevRange(context.Background(), sink.Key(prefix, "u7")+":d", 0, -1).Result()
	if len(ids) != 10 || ids[0] != "m5" || ids[9] != "m14" {
		t.Fatalf("remembered %v, want m5..m14", ids)
	}
}

// A dedupe set written by an earlier version (scores: the time applied,
// + 0.5 for a launch) keeps working: its messageIds still count once
// within the window, the expired ones are pruned, and the cap forgets
// them first, the oldest first.
func TestDedupeReadsTheEarlierScores(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	ctx := context.Background()
	s := newSink(c, prefix, sink.Config{DedupeWindow: time.Hour, MaxDedupeIDs: 3})
	now := base + 3_600_000
	key := sink.Key(prefix, "u8") + ":d"
	c.ZAdd(ctx, key,
		redis.Z{Score: float64(now - 1000), Member: "old-visit"},
		redis.Z{Score: float64(now-2000) + 0.5, Member: "old-launch"},
		redis.Z{Score: float64(now - 3_600_001), Member: "expired"})
	s.SetNow(func() time.Time { return time.UnixMilli(now) })
	res := apply(t, s,
		rec{userEv(profile.KindWebVisit, "u8", "", base, "old-visit"), "P", 0},
		rec{userEv(profile.KindAppLaunch, "u8", "", base, "old-launch"), "P", 1},
		rec{userEv(profile.KindWebVisit, "u8", "", base, "expired"), "P", 2})
	if res.DupMessageID != 2 || res.Visits != 1 || res.Launches != 0 {
		t.Fatalf("result %+v, want the two remembered ids dropped and the expired one counted", res)
	}
	// one more: four remembered, one over the cap: the earliest goes
	s.SetNow(func() time.Time { return time.UnixMilli(now + 16 - now%16) })
	res = apply(t, s, rec{userEv(profile.KindWebVisit, "u8", "", base, "new"), "P", 3})
	if res.Visits != 1 || res.Forgotten != 1 {
		t.Fatalf("result %+v, want one visit and one id forgotten", res)
	}
	ids, _ := c.ZRevRange(ctx, key, 0, -1).Result()
	if fmt.Sprint(ids) != "[old-visit expired new]" {
		t.Fatalf("remembered %v, want [old-visit expired new]", ids)
	}
}

// --- the semilattice, extended to links -------------------------------

// journeyStream generates a regular stream: a few users, anonymous ids of
// which most belong to one user (never two), events of every kind under
// the anonymous id, the user, or both, aliases, and copies of events
// (same messageId) under the other id of the same person.
func journeyStream(rng *rand.Rand) []profile.Event {
	users := []string{"u1", "u2", "u3"}
	owner := map[string]string{"a1": "u1", "a2": "u1", "a3": "u2", "a4": "u3", "a5": "", "a6": ""}
	anons := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	var evs []profile.Event
	kinds := []profile.Kind{profile.KindAppLaunch, profile.KindWebVisit, profile.KindIdentify}
	for i := range 60 {
		a := anons[rng.IntN(len(anons))]
		u := owner[a]
		t := base + int64(rng.IntN(20))
		mid := fmt.Sprint("m", i)
		if rng.IntN(3) == 0 {
			mid = "" // counted by its place in its log alone
		}
		kind := kinds[rng.IntN(len(kinds))]
		f := []string{"email", fmt.Sprintf("e%d@x.io", rng.IntN(4)), "trait.plan", fmt.Sprint(rng.IntN(3))}
		var e profile.Event
		switch r := rng.IntN(10); {
		case u != "" && r < 2:
			e = aliasEv(u, a, t)
		case u != "" && r < 5:
			e = userEv(kind, u, a, t, mid, f...)
		case r < 6:
			e = userEv(kind, users[rng.IntN(len(users))], "", t, mid, f...)
		default:
			e = anonEv(kind, a, t, mid, f...)
		}
		evs = append(evs, e)
		if rng.IntN(6) == 0 && e.Kind != profile.KindAlias && mid != "" { // a copy under the person's other id
			c := e
			if strings.HasPrefix(e.ProfileID, "anon:") && u != "" {
				c = userEv(e.Kind, u, "", e.Time, mid, f...)
			} else if e.LinkAnonID != "" {
				c = anonEv(e.Kind, e.LinkAnonID, e.Time, mid, f...)
			}
			evs = append(evs, c)
		}
	}
	return evs
}

// reference applies the stream as the contract defines its result: every
// event of a linked anonymous id as if it carried its user id, in one
// batch, through a sink of its own.
func reference(t *testing.T, c redis.UniversalClient, prefix string, evs []profile.Event) map[string]map[string]string {
	owner := map[string]string{}
	for _, e := range evs {
		if e.LinkAnonID != "" {
			if _, ok := owner[e.LinkAnonID]; !ok {
				owner[e.LinkAnonID] = e.ProfileID
			}
		}
	}
	var recs []rec
	for i, e := range evs {
		e.LinkAnonID = ""
		if a, ok := profile.AnonID(e.ProfileID); ok && owner[a] != "" {
			e.ProfileID = owner[a] // as if it had carried the user id
			e.Fields = append(append([]profile.Field(nil), e.Fields...), profile.Field{Name: profile.FieldCustomerID, Value: owner[a]})
		}
		recs = append(recs, rec{e, "R", int64(i)})
	}
	apply(t, newSink(c, prefix, sink.Config{}), recs...)
	return profiles(t, c, prefix)
}

// profiles reads every profile hash under prefix, less created_at and
// updated_at, the only fields outside the order-independence rule.
func profiles(t *testing.T, c redis.UniversalClient, prefix string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	var keys []string
	var mu sync.Mutex
	scan := func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, prefix+"profile:{*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch cc := c.(type) {
	case *redis.ClusterClient: // every master's keys, as analysts would scan them
		err = cc.ForEachMaster(context.Background(), scan)
	case *redis.Client:
		err = scan(context.Background(), cc)
	default:
		t.Fatalf("client %T", c)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "}") {
			continue
		}
		h := hget(t, c, k)
		delete(h, "created_at")
		delete(h, "updated_at")
		out[strings.TrimPrefix(k, prefix)] = h
	}
	return out
}

// deliver runs the stream through instances the way Kafka and the
// consumer would: the events spread over logs in a random order, each log
// read in offset order, batches mixing logs, a random instance per batch,
// crashes after a random step that send the uncommitted records again.
func deliver(t *testing.T, rng *rand.Rand, c redis.UniversalClient, prefix string, evs []profile.Event, cfg sink.Config) {
	logs := make([][]rec, 3)
	for _, i := range rng.Perm(len(evs)) {
		l := rng.IntN(len(logs))
		logs[l] = append(logs[l], rec{evs[i], fmt.Sprint("L", l), int64(len(logs[l]))})
	}
	instances := []*sink.Sink{newSink(c, prefix, cfg), newSink(c, prefix, cfg)}
	committed := make([]int, len(logs))
	for round := 0; round < 10_000; round++ {
		next := make([]int, len(logs))
		var parts [][]rec
		for l := range logs {
			n := min(committed[l]+rng.IntN(6), len(logs[l]))
			parts = append(parts, logs[l][committed[l]:n])
			next[l] = n
		}
		var batch []rec // the logs' records interleaved, each log in order
		for {
			var open []int
			for i, p := range parts {
				if len(p) > 0 {
					open = append(open, i)
				}
			}
			if len(open) == 0 {
				break
			}
			i := open[rng.IntN(len(open))]
			batch = append(batch, parts[i][0])
			parts[i] = parts[i][1:]
		}
		done := true
		for l := range logs {
			done = done && committed[l] == len(logs[l])
		}
		if done {
			return
		}
		s := instances[rng.IntN(len(instances))]
		crashAt := 0
		if rng.IntN(4) == 0 {
			crashAt = 1 + rng.IntN(4)
		}
		s.SetStep(func(n int) error {
			if n == crashAt {
				return errors.New("crash")
			}
			return nil
		})
		_, err := s.ApplyCounted(context.Background(), batchOf(batch))
		s.SetStep(nil)
		if err != nil {
			if crashAt == 0 {
				t.Fatal(err)
			}
			instances[rng.IntN(len(instances))] = newSink(c, prefix, cfg) // the process died
			continue
		}
		if rng.IntN(8) == 0 {
			continue // written, but the commit was lost: delivered again
		}
		copy(committed, next)
	}
	t.Fatal("the stream was not delivered in 10,000 batches")
}

// The final profiles depend only on the set of events: never on their
// order, on batching, on crashes between the steps of a link, on two
// instances or on redelivery.
func TestLinkResultDependsOnlyOnTheSetOfEvents(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	seeds := 40
	if testing.Short() {
		seeds = 15
	}
	semilattice(t, c, prefix, seeds, sink.Config{})
	// and with every link by the four steps, as on a Cluster
	fourSteps = true
	defer func() { fourSteps = false }()
	semilattice(t, c, prefix+"steps:", seeds, sink.Config{})
}

// On one node, an anonymous id that has no history of its own (a device
// id that only ever came with its user id) is linked inside the user's own
// update: no claim, fold or finish call, and the keys end as the four
// steps leave them. An id with history still takes the four steps.
func TestOneStepLinkOnOneNode(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := newSink(c, prefix, sink.Config{})
	var steps []int
	s.SetStep(func(n int) error { steps = append(steps, n); return nil })
	res := apply(t, s, rec{userEv(profile.KindAppLaunch, "u1", "a1", base, "m1"), "Q", 1})
	if res.Links[sink.LinkLinked] != 1 || len(steps) != 1 {
		t.Fatalf("links %v after steps %v, want one link in step 1 alone", res.Links, steps)
	}
	if owner, _ := c.Get(context.Background(), sink.LinkKey(prefix, "a1")).Result(); owner != "u1" {
		t.Errorf("link key holds %q, want u1", owner)
	}
	if l := hget(t, c, sink.LinksKey(prefix, "u1")); len(l) != 1 || l["a1"] != "f" {
		t.Errorf("links of u1 = %v, want a1:f", l)
	}
	if m := hget(t, c, sink.Key(prefix, "u1")+":m"); m["lp"] != "" && m["lp"] != "0" {
		t.Errorf("pending reservations %q, want none", m["lp"])
	}
	// a later event of the id, in a fresh process (no cache): routed
	res = apply(t, newSink(c, prefix, sink.Config{}), rec{anonEv(profile.KindWebVisit, "a1", base-5, "m2"), "P", 1})
	if res.Routed != 1 || exists(t, c, sink.Key(prefix, "anon:a1")) {
		t.Fatalf("routed %d, anon:a1 exists %v", res.Routed, exists(t, c, sink.Key(prefix, "anon:a1")))
	}
	if h := hget(t, c, sink.Key(prefix, "u1")); h["web_visits"] != "1" || h["app_launches"] != "1" || h["first_seen_channel"] != "web" {
		t.Fatalf("u1 = %v", h)
	}
	// an id with history: the four steps
	apply(t, s, rec{anonEv(profile.KindWebVisit, "a2", base, "m3"), "P", 2})
	steps = nil
	res = apply(t, s, rec{userEv(profile.KindAppLaunch, "u1", "a2", base+1, "m4"), "Q", 2})
	if res.Links[sink.LinkLinked] != 1 || len(steps) != 4 {
		t.Fatalf("links %v after steps %v, want one link by steps 1 to 4", res.Links, steps)
	}
	// an id another user holds: not taken, by a process that knows the
	// link and by one that must ask Redis
	for i, s := range []*sink.Sink{s, newSink(c, prefix, sink.Config{})} {
		res = apply(t, s, rec{userEv(profile.KindAppLaunch, "u2", "a1", base+2, fmt.Sprint("m5.", i)), "R", int64(1 + i)})
		if res.Links[sink.LinkConflict] != 1 {
			t.Fatalf("links %v, want a conflict", res.Links)
		}
	}
	if owner, _ := c.Get(context.Background(), sink.LinkKey(prefix, "a1")).Result(); owner != "u1" {
		t.Errorf("link key holds %q, want u1", owner)
	}
	if l := hget(t, c, sink.LinksKey(prefix, "u2")); len(l) != 0 {
		t.Errorf("links of u2 = %v, want none", l)
	}
}

// On a real Redis Cluster (deploy/redis-cluster.sh) the anonymous ids and
// their users are in different slots of different masters: the same
// property holds, and so does every step's crash safety.
func TestLinkOnRedisCluster(t *testing.T) {
	c := testenv.RealCluster(t)
	prefix := fmt.Sprintf("test-cluster-%d:", rand.Int64())
	ctx := context.Background()
	slots := map[int64]bool{}
	for _, k := range []string{sink.Key(prefix, "u1"), sink.Key(prefix, "anon:a1"), sink.Key(prefix, "anon:a3")} {
		n, err := c.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[n] = true
	}
	if len(slots) < 2 {
		t.Fatalf("the test ids share a slot: no cross-slot link to test")
	}
	semilattice(t, c, prefix, 10, sink.Config{})
	// every step waits for a replica of each master it wrote to
	semilattice(t, c, prefix+"r1:", 10, sink.Config{MinReplicas: 1})
	for step := 1; step <= 4; step++ {
		for _, mids := range []bool{true, false} {
			crashBetweenSteps(t, c, fmt.Sprintf("%scrash%d%v:", prefix, step, mids), step, mids)
		}
	}
}

// A master that lost its scripts (restarted, failed over) gets every
// script loaded again, also on the path that waits for replicas: the apply
// script and the link scripts.
func TestScriptsReloadedWhileWaitingForReplicas(t *testing.T) {
	c := testenv.RealCluster(t)
	prefix := fmt.Sprintf("test-reload-%d:", rand.Int64())
	ctx := context.Background()
	s := newSink(c, prefix, sink.Config{MinReplicas: 1})
	apply(t, s, rec{userEv(profile.KindAppLaunch, "u1", "a1", base, "m1"), "P", 0})
	if err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.ScriptFlush(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	res := apply(t, s,
		rec{userEv(profile.KindWebVisit, "u2", "", base+1, "m2"), "P", 1},
		rec{userEv(profile.KindWebVisit, "u5", "a5", base+1, "m3"), "P", 2})
	if res.Visits != 2 || res.Links[sink.LinkLinked] != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v", res)
	}
}

func semilattice(t *testing.T, c redis.UniversalClient, prefix string, seeds int, cfg sink.Config) {
	t.Helper()
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		evs := journeyStream(rng)
		want := reference(t, c, fmt.Sprintf("%sref%d:", prefix, seed), evs)
		for run := range 2 {
			p := fmt.Sprintf("%sgot%d.%d:", prefix, seed, run)
			deliver(t, rng, c, p, evs, cfg)
			got := profiles(t, c, p)
			if diff := diffProfiles(want, got); diff != "" {
				t.Fatalf("seed %d run %d: %s", seed, run, diff)
			}
		}
	}
}

func diffProfiles(want, got map[string]map[string]string) string {
	var out []string
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			out = append(out, fmt.Sprintf("%s missing", id))
			continue
		}
		for k, v := range w {
			if g[k] != v {
				out = append(out, fmt.Sprintf("%s.%s = %q, want %q", id, k, g[k], v))
			}
		}
		for k, v := range g {
			if _, ok := w[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s = %q, want absent", id, k, v))
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			out = append(out, fmt.Sprintf("%s present, want absent", id))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// TestLinkMemory measures what a link keeps for good (contract section 6:
// the memory per link is documented): the anonymous id's link key, its
// entry in the user's links hash, and its watermark in the user's meta
// hash, per log it had records on. MEMORY USAGE is Redis' own measure;
// miniredis has none.
func TestLinkMemory(t *testing.T) {
	c, prefix, real := redisForTest(t)
	if !real {
		t.Skip("needs a real Redis for MEMORY USAGE")
	}
	ctx := context.Background()
	s := newSink(c, prefix, sink.Config{})
	usage := func(k string) int64 {
		n, err := c.MemoryUsage(ctx, k).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		return n
	}
	const n = 100
	user := "user-7f3c9a2e" // ids of a realistic length
	apply(t, s, rec{userEv(profile.KindAppLaunch, user, "", base, "u0"), "topic-id-0123456789abcdef:3", 0})
	metaBefore := usage(sink.Key(prefix, user) + ":m")
	var linkKeys int64
	for i := range n {
		a := fmt.Sprintf("9b2d41e0-5c1a-4a55-8f1e-%012d", i) // a UUID, as SDKs make them
		apply(t, s, rec{anonEv(profile.KindWebVisit, a, base, "v"+a), "topic-id-0123456789abcdef:7", int64(i)})
		apply(t, s, rec{userEv(profile.KindIdentify, user, a, base+1, "i"+a), "topic-id-0123456789abcdef:3", int64(i + 1)})
		linkKeys += usage(sink.LinkKey(prefix, a))
	}
	links := usage(sink.LinksKey(prefix, user))
	meta := usage(sink.Key(prefix, user)+":m") - metaBefore
	per := (linkKeys + links + meta) / n
	t.Logf("memory per link: %d bytes (link key %d, links hash entry %d, watermark %d per log)", per, linkKeys/n, links/n, meta/n)
	if per > 512 {
		t.Errorf("a link keeps %d bytes, more than the 512 the README promises", per)
	}
}

// With MinReplicas, a batch whose writes no replica acknowledged fails
// (the consumer retries it and commits nothing): a lone server has none.
func TestMinReplicasFailsTheBatchWithoutReplicas(t *testing.T) {
	c, prefix, real := redisForTest(t)
	if !real {
		t.Skip("needs a real Redis for WAIT")
	}
	s := newSink(c, prefix, sink.Config{MinReplicas: 1, ReplicaTimeout: 50 * time.Millisecond})
	_, err := s.ApplyCounted(context.Background(), batchOf([]rec{{userEv(profile.KindWebVisit, "u", "", base, "m"), "P", 1}}))
	if !errors.Is(err, sink.ErrReplicas) {
		t.Fatalf("err = %v, want ErrReplicas", err)
	}
}
