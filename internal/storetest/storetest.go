// Package storetest is the contract every consumer Store must pass (the
// consumer package documents it): a repeated or partly repeated Apply is
// harmless, a record is counted once however often it comes back, field
// merges are idempotent and order-independent, and the profile hash has
// the contract's shape. The Redis sink and the consumer's fake run the
// same suite, so a test that passes against the fake says something about
// the sink too.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/profiled/profiled/profile"
)

// Store is the part of the consumer's Store the suite exercises.
type Store interface {
	Apply(ctx context.Context, updates []*profile.Update) error
}

// Read returns the hash of profile id as the store keeps it; an absent
// profile is an empty map.
type Read func(ctx context.Context, id string) (map[string]string, error)

// Run runs the suite. newStore returns an empty store and its reader; it
// is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) (Store, Read)) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store, read Read)
	}{
		{"ApplyTwiceCountsOnce", applyTwiceCountsOnce},
		{"PartlyAppliedThenWhole", partlyAppliedThenWhole},
		{"OffsetAtOrBelowAppliedNotCounted", offsetAtOrBelowApplied},
		{"SourcesAreSeparateLogs", sourcesAreSeparate},
		{"MessageIDCountsOnce", messageIDCountsOnce},
		{"FieldMergeOrderIndependent", fieldMergeOrderIndependent},
		{"CountersPresentOnEveryProfile", countersPresent},
		{"CancelledApplyThenRetry", cancelledThenRetry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, read := newStore(t)
			tc.fn(t, s, read)
		})
	}
}

// base is a fixed event time well inside the contract's range.
var base = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixMilli()

type rec struct {
	kind   profile.Kind
	id     string
	at     int64 // ms after base
	mid    string
	src    string
	offset int64
	fields []profile.Field
}

// updates folds records into one update per profile, in first-seen order,
// as the consumer folds a batch.
func updates(recs ...rec) []*profile.Update {
	byID := map[string]*profile.Update{}
	var out []*profile.Update
	for _, r := range recs {
		u, ok := byID[r.id]
		if !ok {
			u = profile.NewUpdate(r.id)
			byID[r.id] = u
			out = append(out, u)
		}
		u.Add(profile.Event{Kind: r.kind, ProfileID: r.id, Time: base + r.at, MessageID: r.mid, Fields: r.fields}, r.src, r.offset)
	}
	return out
}

func apply(t *testing.T, s Store, ups []*profile.Update) {
	t.Helper()
	if err := s.Apply(context.Background(), ups); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func read(t *testing.T, r Read, id string) map[string]string {
	t.Helper()
	h, err := r(context.Background(), id)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return h
}

// want checks the named fields of id's hash; "" means absent.
func want(t *testing.T, r Read, id string, fields map[string]string) {
	t.Helper()
	h := read(t, r, id)
	for k, v := range fields {
		if got, ok := h[k]; v == "" && ok {
			t.Errorf("%s: %s = %q, want absent", id, k, got)
		} else if got != v {
			t.Errorf("%s: %s = %q, want %q", id, k, got, v)
		}
	}
}

func applyTwiceCountsOnce(t *testing.T, s Store, r Read) {
	ups := updates(
		rec{kind: profile.KindAppLaunch, id: "u1", at: 0, mid: "m1", src: "s:0", offset: 1,
			fields: []profile.Field{{Name: profile.FieldEmail, Value: "a@example.com"}}},
		rec{kind: profile.KindWebVisit, id: "u1", at: 1000, mid: "m2", src: "s:0", offset: 2},
	)
	apply(t, s, ups)
	first := read(t, r, "u1")
	apply(t, s, ups)
	want(t, r, "u1", map[string]string{
		profile.FieldAppLaunches: "1", profile.FieldWebVisits: "1", profile.FieldEmail: "a@example.com",
		profile.FieldFirstSeen: profile.FormatTime(base), profile.FieldFirstSeenChannel: "app",
		profile.FieldLastSeen: profile.FormatTime(base + 1000), profile.FieldLastSeenChannel: "web",
	})
	if again := read(t, r, "u1"); again[profile.FieldCreatedAt] != first[profile.FieldCreatedAt] {
		t.Errorf("created_at moved on a repeated Apply: %q then %q", first[profile.FieldCreatedAt], again[profile.FieldCreatedAt])
	}
}

// partlyAppliedThenWhole is a retry after an Apply that wrote some
// profiles of the slice and then failed.
func partlyAppliedThenWhole(t *testing.T, s Store, r Read) {
	ups := updates(
		rec{kind: profile.KindAppLaunch, id: "a", src: "s:0", offset: 10},
		rec{kind: profile.KindAppLaunch, id: "b", src: "s:0", offset: 11},
		rec{kind: profile.KindAppLaunch, id: "a", src: "s:0", offset: 12},
	)
	apply(t, s, ups[:1])
	apply(t, s, ups)
	want(t, r, "a", map[string]string{profile.FieldAppLaunches: "2"})
	want(t, r, "b", map[string]string{profile.FieldAppLaunches: "1"})
}

// visit is a web visit of profile "u" at offset of partition log src.
func visit(src string, offset int64) rec {
	return rec{kind: profile.KindWebVisit, id: "u", src: src, offset: offset}
}

func offsetAtOrBelowApplied(t *testing.T, s Store, r Read) {
	apply(t, s, updates(visit("s:0", 5)))
	// a redelivery from an earlier offset on: 3 and 5 were applied (3 as
	// part of what came before 5), 6 is new
	apply(t, s, updates(visit("s:0", 3), visit("s:0", 5), visit("s:0", 6)))
	want(t, r, "u", map[string]string{profile.FieldWebVisits: "2"})
}

func sourcesAreSeparate(t *testing.T, s Store, r Read) {
	apply(t, s, updates(visit("s:0", 5)))
	// the same offset in another partition, or in a recreated topic, is
	// another record
	apply(t, s, updates(visit("s:1", 5), visit("t:0", 0)))
	want(t, r, "u", map[string]string{profile.FieldWebVisits: "3"})
}

func messageIDCountsOnce(t *testing.T, s Store, r Read) {
	// the producer sent one event twice: two records, one messageId
	apply(t, s, updates(rec{kind: profile.KindAppLaunch, id: "u", mid: "same", src: "s:0", offset: 1}))
	apply(t, s, updates(
		rec{kind: profile.KindAppLaunch, id: "u", mid: "same", src: "s:1", offset: 7},
		rec{kind: profile.KindAppLaunch, id: "u", src: "s:1", offset: 8},
	))
	want(t, r, "u", map[string]string{profile.FieldAppLaunches: "2"})
}

func fieldMergeOrderIndependent(t *testing.T, s Store, r Read) {
	email := func(v string) []profile.Field { return []profile.Field{{Name: profile.FieldEmail, Value: v}} }
	older := func(id string) rec {
		return rec{kind: profile.KindIdentify, id: id, at: 0, src: "s:0", offset: 1, fields: email("old@example.com")}
	}
	newer := func(id string) rec {
		return rec{kind: profile.KindIdentify, id: id, at: 5000, src: "s:0", offset: 2, fields: email("new@example.com")}
	}
	tie := func(id, v string, off int64) rec {
		return rec{kind: profile.KindIdentify, id: id, at: 9000, src: "s:1", offset: off,
			fields: []profile.Field{{Name: "trait.plan", Value: v}}}
	}
	apply(t, s, updates(older("x"), tie("x", "gold", 1)))
	apply(t, s, updates(newer("x"), tie("x", "silver", 2)))
	apply(t, s, updates(newer("y"), tie("y", "silver", 2)))
	apply(t, s, updates(older("y"), tie("y", "gold", 1)))
	apply(t, s, updates(older("y"), newer("y"))) // again: idempotent
	for _, id := range []string{"x", "y"} {
		want(t, r, id, map[string]string{
			profile.FieldEmail: "new@example.com",
			"trait.plan":       "silver", // equal times: the value greater in byte order
			// identify moves no time and counts nothing
			profile.FieldFirstSeen: "", profile.FieldAppLaunches: "0", profile.FieldWebVisits: "0",
		})
	}
}

func countersPresent(t *testing.T, s Store, r Read) {
	apply(t, s, updates(rec{kind: profile.KindIdentify, id: "quiet", src: "s:0", offset: 1,
		fields: []profile.Field{{Name: profile.FieldCity, Value: "Pune"}}}))
	h := read(t, r, "quiet")
	want(t, r, "quiet", map[string]string{profile.FieldAppLaunches: "0", profile.FieldWebVisits: "0", profile.FieldCity: "Pune"})
	for _, k := range []string{profile.FieldCreatedAt, profile.FieldUpdatedAt} {
		if _, err := time.Parse(time.RFC3339Nano, h[k]); err != nil {
			t.Errorf("%s = %q: %v", k, h[k], err)
		}
	}
	if h[profile.FieldCreatedAt] > h[profile.FieldUpdatedAt] {
		t.Errorf("created_at %s after updated_at %s", h[profile.FieldCreatedAt], h[profile.FieldUpdatedAt])
	}
	if h, err := r(context.Background(), "never-written"); err != nil || len(h) != 0 {
		t.Errorf("an absent profile reads as %v, %v; want an empty hash", h, err)
	}
}

// cancelledThenRetry: an Apply whose context is cancelled either wrote
// everything or returns an error; retried, the slice counts once.
func cancelledThenRetry(t *testing.T, s Store, r Read) {
	var recs []rec
	for i := 0; i < 50; i++ {
		recs = append(recs, rec{kind: profile.KindAppLaunch, id: fmt.Sprintf("c%d", i%5), src: "s:0", offset: int64(i)})
	}
	ups := updates(recs...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Apply(ctx, ups) // either outcome is allowed
	apply(t, s, ups)
	for i := 0; i < 5; i++ {
		want(t, r, fmt.Sprintf("c%d", i), map[string]string{profile.FieldAppLaunches: "10"})
	}
}
