package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/view"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

func miniClient(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return mr, c
}

func ids(t *testing.T, src *Source) []string {
	t.Helper()
	var out []string
	err := src.Each(context.Background(), func(ps []Profile, _ Scanned) error {
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// The scan lists profile hashes only: not bookkeeping keys, not keys of
// another prefix, not an anonymous hash beside its link (merged, or being
// merged, into its user), and a user's anonymous ids are the linked ('f')
// ones, as the read API lists them.
func TestEachSkipsBookkeepingAndLinked(t *testing.T) {
	mr, c := miniClient(t)
	const pre = "p*[x]:" // glob characters in the prefix match themselves only
	for _, k := range []string{
		"profile:{u-9}", "other:profile:{u-8}", "p-x:profile:{u-7}", // other prefixes
		pre + "profile:{u-1}:m", pre + "profile:{u-1}:d", pre + "profile:{anon:a-2}:snap",
		pre + "profile:{a}b}", // not a profile id (braces)
	} {
		mr.HSet(k, "f", "v")
	}
	mr.HSet(pre+"profile:{u-1}", "customer_id", "u-1")
	mr.HSet(pre+"profile:{u-1}:links", "a-1", "f", "a-2", "r", "a-0", "f")
	mr.Set(pre+"profile:{anon:a-1}:link", "u-1")
	mr.Set(pre+"profile:{anon:a-0}:link", "u-1")
	mr.HSet(pre+"profile:{anon:a-0}", "anonymous_id", "a-0") // must not happen; skipped if it does
	mr.HSet(pre+"profile:{anon:a-3}", "anonymous_id", "a-3")
	mr.HSet(pre+"profile:{u-4}", "customer_id", "u-4")

	src := &Source{Client: c, Prefix: pre, Batch: 2}
	if got, want := ids(t, src), []string{"anon:a-3", "u-1", "u-4"}; !equal(got, want) {
		t.Fatalf("profiles = %v, want %v", got, want)
	}
	var links []string
	_ = src.Each(context.Background(), func(ps []Profile, _ Scanned) error {
		for _, p := range ps {
			if p.ID == "u-1" {
				links = p.AnonymousIDs
			}
		}
		return nil
	})
	if want := []string{"a-0", "a-1"}; !equal(links, want) {
		t.Fatalf("anonymous ids of u-1 = %v, want %v", links, want)
	}
	if n, err := src.Estimate(context.Background()); err != nil || n < 1 || n > 15 {
		t.Fatalf("estimate = %d, %v", n, err)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// JSON Lines is the read API's JSON: each line equals what GET
// /v1/profiles/<id> encodes for the same profile (sink.Read, then
// view.NewLinked), key for key.
func TestJSONLIsTheReadAPIJSON(t *testing.T) {
	_, c := miniClient(t)
	ps := generate(1, 60)
	store(t, c, "j:", ps)
	var out bytes.Buffer
	st, err := Export(context.Background(), &Source{Client: c, Prefix: "j:", Batch: 7}, &out, Options{Format: FormatJSONL, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if st.Exported != int64(len(ps)) {
		t.Fatalf("exported %d, want %d", st.Exported, len(ps))
	}
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		n++
		var m struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		found, err := sink.Read(context.Background(), c, "j:", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(view.NewLinked(found.ID, found.Fields, found.LinkedFrom, found.AnonymousIDs, testNow))
		if !bytes.Equal(sc.Bytes(), want) {
			t.Fatalf("line of %s:\n got %s\nwant %s", m.ID, sc.Bytes(), want)
		}
	}
	if n != len(ps) {
		t.Fatalf("%d lines, want %d", n, len(ps))
	}
}

// --fields keeps the listed keys in JSON Lines: traits keeps every trait,
// birthday keeps the age computed from it.
func TestJSONLFields(t *testing.T) {
	_, c := miniClient(t)
	key := sink.Key("", "u-1")
	c.HSet(context.Background(), key, "customer_id", "u-1", "birthday", "1992-03-14", "email", "e@x.io", "trait.plan", "gold")
	cols, err := SelectColumns("id, birthday,traits")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Export(context.Background(), &Source{Client: c}, &out, Options{Format: FormatJSONL, Columns: cols, Now: testNow}); err != nil {
		t.Fatal(err)
	}
	want := `{"age":{"years":34,"months":8},"birthday":"1992-03-14","id":"u-1","trait.plan":"gold"}` + "\n"
	if out.String() != want {
		t.Fatalf("got %s want %s", out.String(), want)
	}
}

func TestSelectColumns(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", strings.Join(names(Columns), ","), ""},
		{"id,traits,last_seen", "id,traits,last_seen", ""},
		{" email , id ", "email,id", ""},
		{"id,emial", "", `unknown field "emial"`},
		{"id,id", "", `"id" is listed twice`},
		{"trait.plan", "", `unknown field "trait.plan"`},
	} {
		cols, err := SelectColumns(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(names(cols), ",") != tc.want {
			t.Errorf("%q: %v, %v; want %s", tc.in, names(cols), err, tc.want)
		}
	}
}

func names(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"168h", now.Add(-168 * time.Hour), false},
		{"1d12h", now.Add(-36 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-01T10:00:00+05:30", time.Date(2026, 11, 1, 4, 30, 0, 0, time.UTC), false},
		{"7", time.Time{}, true},
		{"d", time.Time{}, true},
		{"-7d", time.Time{}, true},
		{"-2h", time.Time{}, true},
		{"7days", time.Time{}, true},
		{"2026-13-01", time.Time{}, true},
		{"99999999999d", time.Time{}, true},
	} {
		got, err := ParseSince("active-since", tc.in, now)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "--active-since") {
				t.Errorf("%q: %v, %v; want an error naming the flag", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFilterRules(t *testing.T) {
	p := Profile{ID: "u-1", Fields: map[string]string{
		"country": "IN", "customer_type": "Gold", "trait.plan": "annual",
		"last_seen": "2026-11-20T10:00:00.000Z", "first_seen": "2026-10-01T00:00:00.000Z",
	}}
	cut := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	for _, tc := range []struct {
		name  string
		where []string
		f     Filter
		want  bool
	}{
		{"no filter", nil, Filter{}, true},
		{"equal", []string{"country=IN"}, Filter{}, true},
		{"case matters", []string{"country=in"}, Filter{}, false},
		{"either value of one field", []string{"country=US", "country=IN"}, Filter{}, true},
		{"every field", []string{"country=IN", "customer_type=Silver"}, Filter{}, false},
		{"id", []string{"id=u-1"}, Filter{}, true},
		{"trait", []string{"trait.plan=annual"}, Filter{}, true},
		{"absent field never equals", []string{"city="}, Filter{}, false},
		{"absent counter is 0", []string{"app_launches=0"}, Filter{}, true},
		{"value with =", []string{"trait.plan=a=b"}, Filter{}, false},
		{"active since before", nil, Filter{ActiveSince: cut("2026-11-20T10:00:00Z")}, true},
		{"active since after", nil, Filter{ActiveSince: cut("2026-11-20T10:00:00.001Z")}, false},
		{"acquired since", nil, Filter{AcquiredSince: cut("2026-10-02T00:00:00Z")}, false},
		{"both", []string{"country=IN"}, Filter{ActiveSince: cut("2026-11-01T00:00:00Z"), AcquiredSince: cut("2026-09-01T00:00:00Z")}, true},
	} {
		f := tc.f
		for _, w := range tc.where {
			if err := f.AddWhere(w); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if got := f.Match(p); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	q := Profile{ID: "u-2", Fields: map[string]string{}}
	if (Filter{ActiveSince: cut("2000-01-01T00:00:00Z")}).Match(q) {
		t.Error("a profile without last_seen matched --active-since")
	}
	for _, bad := range []string{"country", "=IN", "emial=x", "trait.=x", "traits=x", "anonymous_ids=x"} {
		var f Filter
		if err := f.AddWhere(bad); err == nil {
			t.Errorf("--where %q: no error", bad)
		}
	}
}

// A failed export leaves no file: neither under the final name nor the
// temporary one.
func TestExportFileLeavesNothingOnError(t *testing.T) {
	mr, c := miniClient(t)
	store(t, c, "", generate(2, 30))
	dir := t.TempDir()
	path := filepath.Join(dir, "out.parquet")
	mr.SetError("LOADING server is loading")
	if _, err := ExportFile(context.Background(), &Source{Client: c}, path, Options{Format: FormatParquet}); err == nil {
		t.Fatal("no error from an export whose Redis fails")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v behind", ents[0].Name())
	}
	mr.SetError("")
	st, err := ExportFile(context.Background(), &Source{Client: c}, path, Options{Format: FormatParquet})
	if err != nil || st.Exported != 30 {
		t.Fatalf("exported %d, %v", st.Exported, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "out.parquet" {
		t.Fatalf("directory holds %v", ents)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// Stored strings become typed values; one that does not read as its type
// (profiled never writes one) becomes null and is counted.
func TestRecordTypes(t *testing.T) {
	p := Profile{ID: "u-1", Fields: map[string]string{
		profile.FieldFirstSeen: "2026-11-28T09:15:02.123Z", profile.FieldBirthday: "1992-03-14",
		profile.FieldLatitude: "18.5204", profile.FieldAppLaunches: "12", profile.FieldLastSeen: "yesterday",
	}}
	r, bad := p.record()
	if bad != 1 || r.LastSeen != nil {
		t.Fatalf("bad = %d, last_seen %v: an unreadable time is null and counted", bad, r.LastSeen)
	}
	if !r.FirstSeen.Equal(testNow) || time.Unix(int64(*r.Birthday)*86400, 0).UTC().Format(time.DateOnly) != "1992-03-14" || *r.Latitude != 18.5204 ||
		r.AppLaunches != 12 || r.WebVisits != 0 || len(r.AnonymousIDs) != 0 || r.AnonymousIDs == nil {
		t.Fatalf("record %+v", r)
	}
}
