package profile

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzDecoder uses a default phone region so that numbers without "+" reach
// the phone library too.
func fuzzDecoder(t testing.TB) *Decoder {
	return newTestDecoder(t, func(c *Config) { c.DefaultPhoneRegion = "US" })
}

// checkDecoded asserts the invariants of any Decode result.
func checkDecoded(t *testing.T, value []byte, ev Event, err error) {
	t.Helper()
	if err != nil {
		r := asRejection(t, err)
		if !knownReason(r.Reason) {
			t.Fatalf("unknown rejection reason %q", r.Reason)
		}
		if r.Detail == "" {
			t.Fatal("rejection without detail")
		}
		if !reflect.DeepEqual(ev, Event{}) {
			t.Fatalf("rejection with a non-zero event %+v", ev)
		}
		return
	}
	if ev.Kind == KindIgnored {
		if !slices.Contains(SkipReasons, ev.SkipReason) {
			t.Fatalf("ignored with unknown skip reason %q", ev.SkipReason)
		}
		if ev.ProfileID != "" || ev.LinkAnonID != "" || len(ev.Fields) != 0 || len(ev.Dropped) != 0 {
			t.Fatalf("ignored event carries data: %+v", ev)
		}
		if (ev.SkipReason == SkipTombstone) != (len(value) == 0) {
			t.Fatalf("tombstone skip for a non-empty value or vice versa")
		}
		return
	}
	if ev.SkipReason != "" {
		t.Fatalf("applied event with skip reason %q", ev.SkipReason)
	}
	checkID(t, "profile id", strings.TrimPrefix(ev.ProfileID, "anon:"))
	if err := ValidateProfileID(ev.ProfileID); err != nil {
		t.Fatalf("the readers refuse the profile id %q the decoder made: %v", ev.ProfileID, err)
	}
	if ev.LinkAnonID != "" {
		checkID(t, "linked anonymous id", ev.LinkAnonID)
		if strings.HasPrefix(ev.ProfileID, "anon:") {
			t.Fatalf("an anonymous profile %q links %q", ev.ProfileID, ev.LinkAnonID)
		}
	}
	if ev.Kind == KindAlias {
		if ev.LinkAnonID == "" || len(ev.Fields) != 0 || len(ev.Dropped) != 0 {
			t.Fatalf("alias %+v: it links, and sets and drops no field", ev)
		}
	} else if ev.LinkAnonID != "" {
		f := map[string]string{}
		for _, fl := range ev.Fields {
			f[fl.Name] = fl.Value
		}
		if f[FieldCustomerID] != ev.ProfileID || f[FieldAnonymousID] != ev.LinkAnonID {
			t.Fatalf("event links %q to %q but sets customer_id %q, anonymous_id %q",
				ev.LinkAnonID, ev.ProfileID, f[FieldCustomerID], f[FieldAnonymousID])
		}
	}
	lo, hi := minEventTime.UnixMilli(), testNow.Add(DefaultConfig().MaxClockSkew).UnixMilli()
	if ev.Time < lo || ev.Time > hi {
		t.Fatalf("event time %s out of range", FormatTime(ev.Time))
	}
	traits := 0
	seen := map[string]bool{}
	for _, f := range ev.Fields {
		if f.Name == "" || f.Value == "" {
			t.Fatalf("empty field %+v", f)
		}
		if seen[f.Name] {
			t.Fatalf("field %q twice", f.Name)
		}
		seen[f.Name] = true
		if !utf8.ValidString(f.Value) {
			t.Fatalf("field %q is not UTF-8", f.Name)
		}
		if key, ok := strings.CutPrefix(f.Name, TraitPrefix); ok {
			traits++
			if len(key) > MaxTraitKeyBytes || len(f.Value) > MaxTraitValueBytes {
				t.Fatalf("trait %q over its limits", key)
			}
			continue
		}
		switch f.Name {
		case FieldCustomerID, FieldAnonymousID, FieldEmail, FieldPhone, FieldBirthday, FieldCustomerType,
			FieldCity, FieldCountry, FieldCoordinates, FieldTimezone:
		default:
			t.Fatalf("unknown field %q", f.Name)
		}
	}
	if traits > MaxTraits {
		t.Fatalf("%d traits", traits)
	}
	for _, dr := range ev.Dropped {
		if !slices.Contains(DropReasons, dr.Reason) || !slices.Contains(DropFields, dr.Field) {
			t.Fatalf("unknown drop %+v", dr)
		}
	}
}

// checkID asserts the usable-id rules of contract section 2 that hold
// whatever the configuration.
func checkID(t *testing.T, what, id string) {
	t.Helper()
	if id == "" || len(id) > MaxIDBytes {
		t.Fatalf("%s of %d bytes", what, len(id))
	}
	if strings.ContainsAny(id, "{}") || strings.TrimSpace(id) != id || !utf8.ValidString(id) {
		t.Fatalf("%s %q is not usable in a Redis hash tag", what, id)
	}
	for _, r := range id {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			t.Fatalf("%s %q has a control character", what, id)
		}
	}
	if isZero(id) {
		t.Fatalf("%s %q reads as zero", what, id)
	}
}

// FuzzDecode proves the decoder never panics and every result keeps the
// contract's invariants; the seed corpus is testdata/fuzz/FuzzDecode.
// richEvent sets more fields than an event's first room holds.
const richEvent = `{"type":"identify","userId":"u-rich","anonymousId":"a-rich","timestamp":"2026-11-28T09:00:00Z",` +
	`"traits":{"email":"r@x.io","customerType":"Gold","birthday":"1990-01-02","plan":"p","seats":3,"beta":true},` +
	`"context":{"timezone":"Asia/Kolkata","location":{"city":"Pune","country":"IN","latitude":18.5,"longitude":73.8}}}`

func FuzzDecode(f *testing.F) {
	d := fuzzDecoder(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		checkEnvelope(t, value)
		ev, err := d.Decode(value, testRecord, testNow)
		checkDecoded(t, value, ev, err)
		again, err2 := d.Decode(value, testRecord, testNow)
		if !reflect.DeepEqual(ev, again) || (err == nil) != (err2 == nil) {
			t.Fatal("decode is not deterministic")
		}
		// into the fields of an event before it, as the consumer decodes:
		// nothing of that event shows through
		rich, err := d.Decode([]byte(richEvent), testRecord, testNow)
		if err != nil || len(rich.Fields) < 8 {
			t.Fatalf("the rich event: %d fields, %v", len(rich.Fields), err)
		}
		into, err3 := d.DecodeInto(rich.Fields, value, testRecord, testNow)
		if !reflect.DeepEqual(ev, into) || (err2 == nil) != (err3 == nil) {
			t.Fatalf("DecodeInto gives\n%+v\nDecode gives\n%+v", into, ev)
		}
	})
}

// FuzzMerge decodes up to three events from fuzz bytes and uses the merge
// laws as the oracle: every order and grouping gives the same state.
func FuzzMerge(f *testing.F) {
	f.Add(
		[]byte(`{"type":"track","event":"Application Opened","userId":"u1","timestamp":"2026-11-28T09:00:00Z","context":{"traits":{"email":"a@x.io","plan":"gold"}}}`),
		[]byte(`{"type":"page","userId":"u1","timestamp":"2026-11-28T09:00:00Z","context":{"traits":{"email":"b@x.io"},"location":{"city":"Pune"}}}`),
		[]byte(`{"type":"identify","userId":"u1","timestamp":"2026-11-28T09:00:00Z","traits":{"email":"c@x.io","plan":"silver"}}`),
	)
	f.Add(
		[]byte(`{"type":"page","anonymousId":"a1","originalTimestamp":"2026-11-28T14:30:00+05:30"}`),
		[]byte(`{"type":"track","event":"App Launched","anonymousId":"a1"}`),
		[]byte(`{"type":"screen"}`),
	)
	f.Add([]byte(`{}`), []byte(`[]`), []byte(nil))
	d := fuzzDecoder(f)
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		var evs []Event
		for _, v := range [][]byte{a, b, c} {
			ev, err := d.Decode(v, testRecord, testNow)
			checkDecoded(t, v, ev, err)
			if err == nil && ev.Kind != KindIgnored {
				evs = append(evs, ev)
			}
		}
		single := make([]*Update, len(evs))
		for i, e := range evs {
			single[i] = NewUpdate("p")
			single[i].Add(e, "t/0", int64(i))
		}
		all := NewUpdate("p")
		for i, e := range evs {
			all.Add(e, "t/0", int64(i))
		}
		want := stateOf(all)
		// Every order of Add.
		for _, perm := range permutations(len(evs)) {
			u := NewUpdate("p")
			for _, i := range perm {
				u.Add(evs[i], "t/0", int64(i))
			}
			if got := stateOf(u); !reflect.DeepEqual(got, want) {
				t.Fatalf("order %v: %+v, want %+v", perm, got, want)
			}
			if !sameMultiset(u.Counts, all.Counts) {
				t.Fatalf("order %v: counts differ", perm)
			}
			// Merge of single-event updates in this order, grouped
			// left and right.
			left := NewUpdate("p")
			for _, i := range perm {
				left.Merge(cloneUpdate(single[i]))
			}
			right := NewUpdate("p")
			for k := len(perm) - 1; k >= 0; k-- {
				s := cloneUpdate(single[perm[k]])
				s.Merge(right)
				right = s
			}
			if !reflect.DeepEqual(stateOf(left), want) || !reflect.DeepEqual(stateOf(right), want) {
				t.Fatalf("grouping changes the state")
			}
		}
		// Idempotence.
		twice := cloneUpdate(all)
		twice.Merge(cloneUpdate(all))
		for i, e := range evs {
			twice.Add(e, "t/0", int64(i))
		}
		if !reflect.DeepEqual(stateOf(twice), want) {
			t.Fatal("merging again changed the state")
		}
		// First/last seen only from launches and visits.
		hasSeen := false
		for _, e := range evs {
			hasSeen = hasSeen || e.Kind.Channel() != ""
		}
		if all.First.IsZero() == hasSeen || all.Last.IsZero() == hasSeen {
			t.Fatalf("first/last seen %v %v with launches/visits=%v", all.First, all.Last, hasSeen)
		}
		if hasSeen && all.First.Time > all.Last.Time {
			t.Fatal("first seen after last seen")
		}
	})
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(slices.Clone(p[:i]), n-1)
			out = append(out, append(q, p[i:]...))
		}
	}
	return out
}

// FuzzShortestAsSent: whatever the bytes, a literal kept as sent is a
// number that FormatNumber writes exactly as sent.
func FuzzShortestAsSent(f *testing.F) {
	for _, s := range []string{"18.5204", "-73.8", "0.000123", "123456789012345", "9007199254740993", "0.30000000000000004", "1e5", "-0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !shortestAsSent(raw) {
			return
		}
		v, ok := numberOf(raw)
		if !ok {
			t.Fatalf("%q kept as sent, but not a number", raw)
		}
		if want := FormatNumber(v); string(raw) != want {
			t.Fatalf("%q kept as sent, but FormatNumber writes %q", raw, want)
		}
	})
}
