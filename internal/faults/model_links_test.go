package faults_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/profiled/profiled/profile"
)

// Unit tests of the stream generator and the reference model's links.
// They need no services and run under -short.

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// TestStreamIsRegularWithJourneys: generated streams hold identity
// journeys and stay regular, so that the model's figures are exact.
func TestStreamIsRegularWithJourneys(t *testing.T) {
	for _, seed := range []uint64{1, 77, 4242} {
		st := generate(seed, 10000, testNow)
		if err := regular(st.recs); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		js := st.journeys()
		t.Logf("seed %d: %+v", seed, js)
		if js.linked < 200 || js.users < 150 || js.devices2 < 5 || js.aliases < 40 || js.across < 10 {
			t.Errorf("seed %d: too few journeys: %+v", seed, js)
		}
		// about 5% of the anonymous events of linked ids come after the link
		if share := float64(js.late) / float64(js.anonymous); share < 0.02 || share > 0.08 {
			t.Errorf("seed %d: %d of %d anonymous events of linked ids come after the link (%.1f%%), want about 5%%",
				seed, js.late, js.anonymous, share*100)
		}
		// a late event really comes after the link of its anonymous id
		linkedAt := map[string]int{}
		for _, r := range st.recs {
			if r.out == applied && r.ev.user != "" && r.ev.anon != "" {
				if _, ok := linkedAt[r.ev.anon]; !ok {
					linkedAt[r.ev.anon] = r.seq
				}
			}
		}
		for _, r := range st.recs {
			if r.late && !r.dup {
				if at, ok := linkedAt[r.ev.anon]; !ok || at > r.seq {
					t.Fatalf("seed %d: late event seq %d of %s comes before its link", seed, r.seq, r.ev.anon)
				}
			}
		}
	}
}

// TestStreamRecordsSayWhatTheModelReads: the generator's account of each
// applied record (its ids, kind, messageId) agrees with the JSON it sent,
// and records are keyed as RudderStack keys them, so that the model is fed
// what the product will read.
func TestStreamRecordsSayWhatTheModelReads(t *testing.T) {
	st := generate(9, 20000, testNow)
	str := func(v any) string {
		switch x := v.(type) {
		case string:
			return strings.TrimSpace(x)
		case json.Number:
			return x.String()
		}
		return ""
	}
	random := 0
	for _, r := range st.recs {
		if r.out != applied {
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(r.value)))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("seq %d: %v", r.seq, err)
		}
		e := r.ev
		if e.user != "" && str(m["userId"]) != e.user {
			t.Fatalf("seq %d: userId %v, the model reads %q", r.seq, m["userId"], e.user)
		}
		if u := str(m["userId"]); e.user == "" && (strings.HasPrefix(u, "u-") || strings.HasPrefix(u, "1000")) {
			t.Fatalf("seq %d: an anonymous event with userId %v", r.seq, m["userId"])
		}
		from := "anonymousId"
		if e.kind == "alias" {
			from = "previousId"
			if m["type"] != "alias" {
				t.Fatalf("seq %d: alias with type %v", r.seq, m["type"])
			}
		}
		if e.anon != "" && str(m[from]) != e.anon {
			t.Fatalf("seq %d: %s %v, the model reads %q", r.seq, from, m[from], e.anon)
		}
		if e.msgID != "" && m["messageId"] != e.msgID {
			t.Fatalf("seq %d: messageId %v, the model reads %q", r.seq, m["messageId"], e.msgID)
		}
		if want := map[bool]string{true: e.user, false: e.anon}[e.user != ""]; string(r.key) != want {
			if !strings.HasPrefix(string(r.key), "k-") && !(r.dup && strings.HasPrefix(string(r.key), "dup-")) {
				t.Fatalf("seq %d: key %q, RudderStack keys it %q", r.seq, r.key, want)
			}
			random++
		}
	}
	if random == 0 {
		t.Error("no record has a key unrelated to its identity")
	}
	for _, r := range st.recs {
		if r.out == skipped && r.value != nil && strings.Contains(string(r.value), `"type":"alias"`) {
			t.Fatalf("seq %d: an alias is not a skipped kind: %s", r.seq, r.value)
		}
	}
}

// TestModelFindsJourneysInStream: in a generated stream, no linked
// anonymous id has a profile, some user's first_seen comes from an
// anonymous event, and each linked user holds its anonymous ids' events.
func TestModelFindsJourneysInStream(t *testing.T) {
	st := generate(5, 20000, testNow)
	want, links := model(st.recs)
	for a := range links {
		if _, ok := want["anon:"+a]; ok {
			t.Fatalf("the model keeps a profile for linked anon:%s", a)
		}
	}
	fromAnon := 0
	for _, r := range st.recs {
		e := r.ev
		if r.out != applied || e.user != "" || links[e.anon] == "" || e.kind == "identify" {
			continue
		}
		w := want[links[e.anon]]
		if w == nil {
			t.Fatalf("anonymous event seq %d of anon:%s: its user %q has no profile", r.seq, e.anon, links[e.anon])
		}
		if w.first.ms == e.ms {
			fromAnon++
		}
	}
	if fromAnon == 0 {
		t.Error("no user's first_seen comes from an anonymous event")
	}
	bare := 0 // links whose user has no profile: an alias alone creates none
	for _, u := range links {
		if want[u] == nil {
			bare++
		}
	}
	if bare == 0 {
		t.Error("no link whose user has no profile")
	}
}

// handRec builds an applied record for the hand-written streams below.
func handRec(seq int, kind, user, anon string, at string, msgID string, fields ...fv) *rec {
	ms, err := time.Parse(time.RFC3339, at)
	if err != nil {
		panic(err)
	}
	e := &event{kind: kind, user: user, anon: anon, ms: ms.UnixMilli(), msgID: msgID}
	e.identify()
	if kind != "alias" {
		e.fields = append(e.fields, fields...)
	}
	return &rec{seq: seq, out: applied, ev: e}
}

// TestModelLinks: hand-written journeys and what the contract says of them.
func TestModelLinks(t *testing.T) {
	dead := func(r *rec) *rec { r.out, r.reason = dead, profile.ReasonBadTimestamp; return r }
	skip := func(r *rec) *rec { r.out = skipped; return r }
	for _, tc := range []struct {
		name  string
		recs  []*rec
		want  map[string]map[string]string
		links map[string]string
	}{
		{
			name: "anonymous visits, sign-up, launches, a late anonymous visit and a messageId copy",
			recs: []*rec{
				handRec(0, "web", "", "A", "2026-11-01T10:00:00Z", "m1", fv{"city", "Pune"}),
				handRec(1, "app", "", "A", "2026-11-02T10:00:00Z", "m2"),
				handRec(2, "identify", "U", "A", "2026-11-03T10:00:00Z", "m3", fv{"email", "u@example.com"}),
				handRec(3, "app", "U", "", "2026-11-04T10:00:00Z", "m4", fv{"city", "Mumbai"}),
				handRec(4, "web", "", "A", "2026-10-30T09:00:00Z", "m5"), // late: sent after the link, happened first
				handRec(5, "web", "U", "", "2026-11-01T10:00:00Z", "m1"), // m1 again under U: counts once
			},
			want: map[string]map[string]string{"U": {
				"customer_id": "U", "anonymous_id": "A", "email": "u@example.com", "city": "Mumbai",
				"first_seen": "2026-10-30T09:00:00.000Z", "first_seen_channel": "web",
				"last_seen": "2026-11-04T10:00:00.000Z", "last_seen_channel": "app",
				"app_launches": "2", "web_visits": "2",
			}},
			links: map[string]string{"A": "U"},
		},
		{
			name: "an alias links; it sets nothing, counts nothing and moves no time",
			recs: []*rec{
				handRec(0, "app", "", "A", "2026-11-01T10:00:00Z", "m1"),
				handRec(1, "alias", "U", "A", "2026-11-09T10:00:00Z", "m2"),
			},
			want: map[string]map[string]string{"U": {
				"customer_id": "U", "anonymous_id": "A",
				"first_seen": "2026-11-01T10:00:00.000Z", "first_seen_channel": "app",
				"last_seen": "2026-11-01T10:00:00.000Z", "last_seen_channel": "app",
				"app_launches": "1", "web_visits": "0",
			}},
			links: map[string]string{"A": "U"},
		},
		{
			name:  "an alias alone creates no profile",
			recs:  []*rec{handRec(0, "alias", "U", "A", "2026-11-01T10:00:00Z", "")},
			want:  map[string]map[string]string{},
			links: map[string]string{"A": "U"},
		},
		{
			name: "two devices: anonymous_id is the latest of all the person's events",
			recs: []*rec{
				handRec(0, "web", "", "A", "2026-11-01T10:00:00Z", "m1"),
				handRec(1, "app", "U", "A", "2026-11-02T10:00:00Z", "m2"),
				handRec(2, "app", "", "B", "2026-11-05T10:00:00Z", "m3"),
				handRec(3, "alias", "U", "B", "2026-11-06T10:00:00Z", ""),
				handRec(4, "identify", "U", "", "2026-11-07T10:00:00Z", "m4", fv{"trait.plan", "pro"}),
			},
			want: map[string]map[string]string{"U": {
				"customer_id": "U", "anonymous_id": "B", "trait.plan": "pro",
				"first_seen": "2026-11-01T10:00:00.000Z", "first_seen_channel": "web",
				"last_seen": "2026-11-05T10:00:00.000Z", "last_seen_channel": "app",
				"app_launches": "2", "web_visits": "1",
			}},
			links: map[string]string{"A": "U", "B": "U"},
		},
		{
			name: "dead-lettered and skipped records link nothing",
			recs: []*rec{
				handRec(0, "web", "", "A", "2026-11-01T10:00:00Z", "m1"),
				dead(handRec(1, "alias", "U", "A", "2026-11-02T10:00:00Z", "")),
				dead(handRec(2, "app", "U", "A", "2026-11-02T10:00:00Z", "m2")),
				skip(handRec(3, "app", "U", "A", "2026-11-02T10:00:00Z", "m3")),
			},
			want: map[string]map[string]string{"anon:A": {
				"anonymous_id": "A",
				"first_seen":   "2026-11-01T10:00:00.000Z", "first_seen_channel": "web",
				"last_seen": "2026-11-01T10:00:00.000Z", "last_seen_channel": "web",
				"app_launches": "0", "web_visits": "1",
			}},
			links: map[string]string{},
		},
		{
			name: "messageId dedupe is per person: an unlinked anonymous id counts its own",
			recs: []*rec{
				handRec(0, "app", "", "A", "2026-11-01T10:00:00Z", "m1"),
				handRec(1, "app", "U", "A", "2026-11-02T10:00:00Z", "m1"), // links A, and m1 is A's
				handRec(2, "app", "", "B", "2026-11-03T10:00:00Z", "m1"),  // B is another person
			},
			want: map[string]map[string]string{
				"U": {
					"customer_id": "U", "anonymous_id": "A",
					"first_seen": "2026-11-01T10:00:00.000Z", "first_seen_channel": "app",
					"last_seen": "2026-11-02T10:00:00.000Z", "last_seen_channel": "app",
					"app_launches": "1", "web_visits": "0",
				},
				"anon:B": {
					"anonymous_id": "B",
					"first_seen":   "2026-11-03T10:00:00.000Z", "first_seen_channel": "app",
					"last_seen": "2026-11-03T10:00:00.000Z", "last_seen_channel": "app",
					"app_launches": "1", "web_visits": "0",
				},
			},
			links: map[string]string{"A": "U"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := regular(tc.recs); err != nil {
				t.Fatal(err)
			}
			// the result depends on the set of records, never on their order
			for _, order := range [][]*rec{tc.recs, reversed(tc.recs)} {
				got, links := model(order)
				if !maps.Equal(links, tc.links) {
					t.Errorf("links %v, want %v", links, tc.links)
				}
				if len(got) != len(tc.want) {
					t.Errorf("profiles %v, want %v", sortedKeys(got), sortedKeys(tc.want))
				}
				for id, w := range tc.want {
					if got[id] == nil {
						t.Errorf("no profile %q", id)
						continue
					}
					if h := got[id].hash(); !maps.Equal(h, w) {
						t.Errorf("profile %q:\n got %v\nwant %v", id, h, w)
					}
				}
			}
		})
	}
}

func reversed(recs []*rec) []*rec {
	out := make([]*rec, len(recs))
	for i, r := range recs {
		out[len(recs)-1-i] = r
	}
	return out
}

// TestRegularRejects: streams outside the contract's regular bounds are
// named, so that a generator change cannot silently make the model's exact
// figures wrong.
func TestRegularRejects(t *testing.T) {
	limit := make([]*rec, 0, maxLinked)
	for i := range maxLinked {
		limit = append(limit, handRec(i, "web", "U", fmt.Sprintf("A%d", i), "2026-11-01T10:00:00Z", ""))
	}
	for _, tc := range []struct {
		name string
		recs []*rec
		says string
	}{
		{"an anonymous id linked to two users", []*rec{
			handRec(0, "app", "U", "A", "2026-11-01T10:00:00Z", ""),
			handRec(1, "alias", "V", "A", "2026-11-01T10:00:00Z", ""),
		}, `owned by "U"`},
		{"a user at the linked-id limit", limit, "the limit is 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := regular(tc.recs)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("regular: %v, want an error saying %q", err, tc.says)
			}
		})
	}
}
