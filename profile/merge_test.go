package profile

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// state is the order-independent part of an Update.
type state struct {
	Fields      map[string]Stamped
	First, Last Seen
}

func stateOf(u *Update) state {
	return state{Fields: maps.Clone(u.Fields), First: u.First, Last: u.Last}
}

func cloneUpdate(u *Update) *Update {
	c := *u
	c.Fields = maps.Clone(u.Fields)
	c.Counts = slices.Clone(u.Counts)
	return &c
}

// located is an event with the place of its record in the log.
type located struct {
	ev     Event
	offset int64
}

func fold(evs []located) *Update {
	u := NewUpdate("p")
	for _, e := range evs {
		u.Add(e.ev, "topic/0", e.offset)
	}
	return u
}

// Small pools make ties (same time, same field, different value) common.
var (
	genFields = []string{FieldEmail, FieldCity, FieldCoordinates, FieldCustomerType, FieldCustomerID, "trait.a", "trait.b", "trait.plan"}
	genValues = []string{"a", "b", "c", "Gold", "Silver", "18.5,73.8"}
	genKinds  = []Kind{KindAppLaunch, KindWebVisit, KindIdentify}
)

const genBase = int64(1_764_320_400_000) // 2025-11-28T09:00:00Z

func genEvent(r *rand.Rand, traitKeys int) Event {
	ev := Event{
		Kind:      genKinds[r.IntN(len(genKinds))],
		ProfileID: "p",
		Time:      genBase + int64(r.IntN(4))*1000, // four distinct times only
	}
	if r.IntN(2) == 0 {
		ev.MessageID = fmt.Sprintf("m%d", r.IntN(5))
	}
	for _, name := range genFields {
		if r.IntN(3) == 0 {
			ev.Fields = append(ev.Fields, Field{name, genValues[r.IntN(len(genValues))]})
		}
	}
	for i := 0; i < traitKeys; i++ {
		ev.Fields = append(ev.Fields, Field{fmt.Sprintf("trait.k%03d", r.IntN(400)), genValues[r.IntN(len(genValues))]})
	}
	return ev
}

func genEvents(r *rand.Rand, n, traitKeys int) []located {
	evs := make([]located, n)
	for i := range evs {
		evs[i] = located{genEvent(r, traitKeys), int64(i)}
	}
	return evs
}

func shuffled(r *rand.Rand, evs []located) []located {
	s := slices.Clone(evs)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// oracle computes the contract's profile state directly from section 5,
// without the incremental fold.
func oracle(evs []located) state {
	st := state{Fields: map[string]Stamped{}}
	for _, e := range evs {
		for _, f := range e.ev.Fields {
			cur, ok := st.Fields[f.Name]
			if !ok || e.ev.Time > cur.Time || (e.ev.Time == cur.Time && f.Value > cur.Value) {
				st.Fields[f.Name] = Stamped{f.Value, e.ev.Time}
			}
		}
	}
	var traits []string
	for name := range st.Fields {
		if strings.HasPrefix(name, TraitPrefix) {
			traits = append(traits, name)
		}
	}
	sort.Strings(traits)
	for len(traits) > MaxTraits {
		delete(st.Fields, traits[len(traits)-1])
		traits = traits[:len(traits)-1]
	}
	var seen []Seen
	for _, e := range evs {
		if e.ev.Kind == KindAppLaunch || e.ev.Kind == KindWebVisit {
			seen = append(seen, Seen{e.ev.Time, e.ev.Kind.Channel()})
		}
	}
	if len(seen) == 0 {
		return st
	}
	minT, maxT := seen[0].Time, seen[0].Time
	for _, s := range seen {
		minT, maxT = min(minT, s.Time), max(maxT, s.Time)
	}
	for _, s := range seen {
		if s.Time == minT && s.Channel > st.First.Channel {
			st.First = s
		}
		if s.Time == maxT && s.Channel > st.Last.Channel {
			st.Last = s
		}
	}
	return st
}

func wantCounts(evs []located) []Count {
	var c []Count
	for _, e := range evs {
		if ch := e.ev.Kind.Channel(); ch != "" {
			c = append(c, Count{Kind: e.ev.Kind, Source: "topic/0", Offset: e.offset, MessageID: e.ev.MessageID})
		}
	}
	return c
}

const propRounds = 400

// TestMergeFoldMatchesOracle proves the fold computes exactly section 5:
// per-field last writer wins with ties to the greater value, first/last seen
// from launches and visits only with ties to the greater channel, and one
// count per launch or visit.
func TestMergeFoldMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 1))
	for i := 0; i < propRounds; i++ {
		evs := genEvents(r, r.IntN(12), 0)
		u := fold(evs)
		if got, want := stateOf(u), oracle(evs); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: fold %+v\nwant %+v\nevents %+v", i, got, want, evs)
		}
		if !sameMultiset(u.Counts, wantCounts(evs)) {
			t.Fatalf("round %d: counts %v, want %v", i, u.Counts, wantCounts(evs))
		}
	}
}

// TestMergeOrderIndependent proves a shuffled event list folds to the same
// state and the same multiset of counts as the ordered list.
func TestMergeOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 1))
	for i := 0; i < propRounds; i++ {
		evs := genEvents(r, 1+r.IntN(15), 0)
		a, b := fold(evs), fold(shuffled(r, evs))
		if !reflect.DeepEqual(stateOf(a), stateOf(b)) {
			t.Fatalf("round %d: ordered %+v\nshuffled %+v", i, stateOf(a), stateOf(b))
		}
		if !sameMultiset(a.Counts, b.Counts) {
			t.Fatalf("round %d: counts differ: %v vs %v", i, a.Counts, b.Counts)
		}
	}
}

// TestMergeLaws proves Merge is commutative, associative and idempotent on
// the state, and that merging folds of any partition equals one fold.
func TestMergeLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 1))
	merged := func(us ...*Update) *Update {
		out := cloneUpdate(us[0])
		for _, u := range us[1:] {
			out.Merge(cloneUpdate(u))
		}
		return out
	}
	for i := 0; i < propRounds; i++ {
		a := fold(genEvents(r, r.IntN(6), 0))
		b := fold(genEvents(r, r.IntN(6), 0))
		c := fold(genEvents(r, r.IntN(6), 0))

		ab, ba := merged(a, b), merged(b, a)
		if !reflect.DeepEqual(stateOf(ab), stateOf(ba)) {
			t.Fatalf("round %d: not commutative: %+v vs %+v", i, stateOf(ab), stateOf(ba))
		}
		if !sameMultiset(ab.Counts, ba.Counts) {
			t.Fatalf("round %d: counts not commutative", i)
		}
		left, right := merged(merged(a, b), c), merged(a, merged(b, c))
		if !reflect.DeepEqual(stateOf(left), stateOf(right)) {
			t.Fatalf("round %d: not associative: %+v vs %+v", i, stateOf(left), stateOf(right))
		}
		if aa := merged(a, a); !reflect.DeepEqual(stateOf(aa), stateOf(a)) {
			t.Fatalf("round %d: not idempotent: %+v vs %+v", i, stateOf(aa), stateOf(a))
		}
		self := cloneUpdate(a)
		self.Merge(self)
		if !reflect.DeepEqual(stateOf(self), stateOf(a)) {
			t.Fatalf("round %d: merging an update into itself changed it", i)
		}
		if e := merged(a, NewUpdate("p")); !reflect.DeepEqual(stateOf(e), stateOf(a)) {
			t.Fatalf("round %d: empty update is not neutral", i)
		}
	}
}

// TestMergePartitions proves that splitting the events into batches in any
// way, folding each and merging the batches in any order gives the fold of
// all events: the sink may batch however it likes.
func TestMergePartitions(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	for i := 0; i < propRounds; i++ {
		evs := genEvents(r, 1+r.IntN(20), 0)
		groups := make([][]located, 1+r.IntN(4))
		for _, e := range evs {
			g := r.IntN(len(groups))
			groups[g] = append(groups[g], e)
		}
		r.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
		got := NewUpdate("p")
		for _, g := range groups {
			got.Merge(fold(g))
		}
		want := fold(evs)
		if !reflect.DeepEqual(stateOf(got), stateOf(want)) {
			t.Fatalf("round %d: batched %+v\nwant %+v", i, stateOf(got), stateOf(want))
		}
		if !sameMultiset(got.Counts, want.Counts) {
			t.Fatalf("round %d: counts differ", i)
		}
	}
}

// TestMergeRedelivery proves adding the same event again leaves the state
// as it was (a redelivered record changes no field), while the count list
// shows the repeat so that the sink can recognise it.
func TestMergeRedelivery(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 1))
	for i := 0; i < propRounds; i++ {
		evs := genEvents(r, 1+r.IntN(10), 0)
		once := fold(evs)
		twice := fold(append(slices.Clone(evs), shuffled(r, evs)...))
		if !reflect.DeepEqual(stateOf(once), stateOf(twice)) {
			t.Fatalf("round %d: redelivery changed the state", i)
		}
		if !sameMultiset(twice.Counts, append(slices.Clone(once.Counts), once.Counts...)) {
			t.Fatalf("round %d: redelivered counts are not the same occurrences", i)
		}
	}
}

// TestMergeTraitTrimOrderIndependent proves keeping the 256 smallest trait
// keys gives the same result whatever the order and batching, and that the
// kept keys are the smallest of the union.
func TestMergeTraitTrimOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 1))
	for i := 0; i < 60; i++ {
		evs := genEvents(r, 2+r.IntN(8), 80+r.IntN(120))
		want := oracle(evs)
		a := fold(evs)
		b := NewUpdate("p")
		for _, e := range shuffled(r, evs) {
			part := NewUpdate("p")
			part.Add(e.ev, "topic/0", e.offset)
			b.Merge(part)
		}
		for _, u := range []*Update{a, b} {
			if !reflect.DeepEqual(stateOf(u), want) {
				t.Fatalf("round %d: trimmed state differs from the oracle", i)
			}
		}
		n := 0
		for name := range a.Fields {
			if strings.HasPrefix(name, TraitPrefix) {
				n++
			}
		}
		if n > MaxTraits {
			t.Fatalf("round %d: %d traits kept", i, n)
		}
	}
}

// TestMergeRules states the section 5 rules one by one on hand-made events.
func TestMergeRules(t *testing.T) {
	t0 := genBase
	ev := func(k Kind, ms int64, fields ...string) Event {
		e := Event{Kind: k, ProfileID: "p", Time: t0 + ms}
		for i := 0; i+1 < len(fields); i += 2 {
			e.Fields = append(e.Fields, Field{fields[i], fields[i+1]})
		}
		return e
	}
	tests := []struct {
		name   string
		events []Event
		fields map[string]Stamped
		first  Seen
		last   Seen
		counts int
	}{
		{"later writer wins", []Event{ev(KindIdentify, 2, "email", "new@x.io"), ev(KindIdentify, 1, "email", "old@x.io")},
			map[string]Stamped{"email": {"new@x.io", t0 + 2}}, Seen{}, Seen{}, 0},
		{"tie: greater value in byte order wins", []Event{ev(KindIdentify, 1, "city", "Pune"), ev(KindIdentify, 1, "city", "Mumbai")},
			map[string]Stamped{"city": {"Pune", t0 + 1}}, Seen{}, Seen{}, 0},
		{"tie: byte order, not case-folded", []Event{ev(KindIdentify, 1, "city", "pune"), ev(KindIdentify, 1, "city", "Pune")},
			map[string]Stamped{"city": {"pune", t0 + 1}}, Seen{}, Seen{}, 0},
		{"per field: fields from different events combine", []Event{ev(KindIdentify, 2, "email", "a@x.io"), ev(KindIdentify, 1, "city", "Pune")},
			map[string]Stamped{"email": {"a@x.io", t0 + 2}, "city": {"Pune", t0 + 1}}, Seen{}, Seen{}, 0},
		{"identify never moves first/last seen", []Event{ev(KindIdentify, 0), ev(KindAppLaunch, 5), ev(KindIdentify, 9)},
			map[string]Stamped{}, Seen{t0 + 5, "app"}, Seen{t0 + 5, "app"}, 1},
		{"earliest first, latest last", []Event{ev(KindWebVisit, 5), ev(KindAppLaunch, 1), ev(KindWebVisit, 9), ev(KindAppLaunch, 3)},
			map[string]Stamped{}, Seen{t0 + 1, "app"}, Seen{t0 + 9, "web"}, 4},
		{"tie at first and last: web beats app", []Event{ev(KindAppLaunch, 1), ev(KindWebVisit, 1)},
			map[string]Stamped{}, Seen{t0 + 1, "web"}, Seen{t0 + 1, "web"}, 2},
		{"tie at first only", []Event{ev(KindWebVisit, 1), ev(KindAppLaunch, 1), ev(KindAppLaunch, 7)},
			map[string]Stamped{}, Seen{t0 + 1, "web"}, Seen{t0 + 7, "app"}, 3},
		{"identify only: no seen, no counts", []Event{ev(KindIdentify, 1, "email", "a@x.io")},
			map[string]Stamped{"email": {"a@x.io", t0 + 1}}, Seen{}, Seen{}, 0},
		{"ignored events change nothing", []Event{{Kind: KindIgnored, SkipReason: SkipNotLaunchEvent}},
			map[string]Stamped{}, Seen{}, Seen{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][]Event{tc.events, reversed(tc.events)} {
				u := NewUpdate("p")
				for i, e := range order {
					u.Add(e, "t/0", int64(i))
				}
				if !reflect.DeepEqual(u.Fields, tc.fields) || u.First != tc.first || u.Last != tc.last || len(u.Counts) != tc.counts {
					t.Fatalf("got fields %v first %v last %v counts %d; want %v %v %v %d",
						u.Fields, u.First, u.Last, len(u.Counts), tc.fields, tc.first, tc.last, tc.counts)
				}
			}
		})
	}
}

// TestMergeCountsCarryOccurrence proves each launch or visit yields one
// Count naming its kind, record and messageId.
func TestMergeCountsCarryOccurrence(t *testing.T) {
	u := NewUpdate("p")
	u.Add(Event{Kind: KindAppLaunch, Time: genBase, MessageID: "m1"}, "events/3", 42)
	u.Add(Event{Kind: KindWebVisit, Time: genBase}, "events/3", 43)
	u.Add(Event{Kind: KindIdentify, Time: genBase}, "events/3", 44)
	want := []Count{
		{Kind: KindAppLaunch, Source: "events/3", Offset: 42, MessageID: "m1"},
		{Kind: KindWebVisit, Source: "events/3", Offset: 43},
	}
	if !reflect.DeepEqual(u.Counts, want) {
		t.Fatalf("counts %+v, want %+v", u.Counts, want)
	}
}

// TestUpdateZeroValue proves a zero Update can be folded into, and
// FieldNames lists fields in byte order.
func TestUpdateZeroValue(t *testing.T) {
	var u Update
	u.Add(Event{Kind: KindIdentify, Time: genBase, Fields: []Field{{"trait.b", "1"}, {"email", "a@x.io"}, {"trait.a", "2"}}}, "t/0", 0)
	if got, want := u.FieldNames(), []string{"email", "trait.a", "trait.b"}; !slices.Equal(got, want) {
		t.Fatalf("FieldNames %v, want %v", got, want)
	}
}

func reversed[T any](s []T) []T {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestMergeTraitLimitBoundary proves the limit at its edge: 256 traits are
// all kept, a 257th drops the greatest key whichever key arrives last, and
// a trimmed key stays gone however late its event comes.
func TestMergeTraitLimitBoundary(t *testing.T) {
	traits := func(keys ...int) Event {
		e := Event{Kind: KindIdentify, Time: genBase}
		for _, k := range keys {
			e.Fields = append(e.Fields, Field{fmt.Sprintf("trait.k%03d", k), "v"})
		}
		return e
	}
	upTo := func(lo, hi int) []int {
		var ks []int
		for k := lo; k < hi; k++ {
			ks = append(ks, k)
		}
		return ks
	}
	u := NewUpdate("p")
	u.Add(traits(upTo(1, 257)...), "t/0", 0) // k001..k256
	if len(u.Fields) != MaxTraits {
		t.Fatalf("256 traits: kept %d", len(u.Fields))
	}
	u.Add(traits(0), "t/0", 1) // a smaller key pushes k256 out
	if _, ok := u.Fields["trait.k256"]; ok || len(u.Fields) != MaxTraits {
		t.Fatalf("257 traits: kept %d, k256 kept=%v", len(u.Fields), ok)
	}
	late := Event{Kind: KindIdentify, Time: genBase + 1000, Fields: []Field{{"trait.k256", "late"}}}
	u.Add(late, "t/0", 2)
	if _, ok := u.Fields["trait.k256"]; ok {
		t.Fatal("a trimmed key came back")
	}
	if _, ok := u.Fields["trait.k000"]; !ok {
		t.Fatal("smallest key lost")
	}
}
