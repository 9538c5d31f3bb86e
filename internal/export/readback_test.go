package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
)

// readBack reads an export with testdata/readback.py: pyarrow for
// Parquet, Python's csv module for CSV. It skips the test when python3
// is missing, or pyarrow cannot be imported (.ci/run installs it).
func readBack(t *testing.T, format, path string) (head map[string]any, rows []map[string]any) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on the PATH: no independent reader")
	}
	cmd := exec.Command(py, "testdata/readback.py", format, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skip("pyarrow cannot be imported: `pip install pyarrow` (.ci/run installs it) to read Parquet back independently")
	}
	if err != nil {
		t.Fatalf("readback.py %s: %v\n%s", format, err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if head == nil {
			head = m
			continue
		}
		rows = append(rows, m)
	}
	return head, rows
}

// wantParquetTypes is the documented schema, as pyarrow names the types.
var wantParquetTypes = map[Kind]string{
	KindString:    "string",
	KindTimestamp: "timestamp[ms, tz=UTC]",
	KindInt:       "int64",
	KindDouble:    "double",
	KindDate:      "date32[day]",
	KindTraits:    "map<string, string ('traits')>",
	KindList:      "list<element: string not null>",
}

// parquetValue is what pyarrow must read for column c of person p: the
// stored value converted by the documented rule, or nil for null.
func parquetValue(c Column, p person) any {
	switch c.Name {
	case ColumnID:
		return p.id
	case ColumnTraits:
		m := map[string]any{}
		for k, v := range p.fields {
			if key, ok := strings.CutPrefix(k, profile.TraitPrefix); ok {
				m[key] = v
			}
		}
		return m
	case ColumnAnonymousIDs:
		out := []any{}
		for _, a := range p.anonIDs() {
			out = append(out, a)
		}
		return out
	}
	v, ok := p.fields[c.Name]
	switch {
	case c.Kind == KindInt && !ok:
		return json.Number("0")
	case !ok:
		return nil
	case c.Kind == KindTimestamp:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return json.Number(strconv.FormatInt(t.UnixMilli(), 10))
	case c.Kind == KindInt:
		return json.Number(v)
	case c.Kind == KindDouble:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return v
}

func normalize(c Column, v any) any {
	if n, ok := v.(json.Number); ok && c.Kind == KindDouble {
		f, _ := n.Float64()
		return f
	}
	return v
}

// checkExports writes generated profiles to c, exports them to Parquet
// and CSV, reads both back with independent readers and compares every
// field of every profile with what was written; then checks the filters
// against a model.
func checkExports(t *testing.T, c redis.UniversalClient) {
	prefix := testenv.Unique(t, "export") + ":"
	people := generate(7, 400)
	store(t, c, prefix, people)
	byID := map[string]person{}
	for _, p := range people {
		byID[p.id] = p
	}
	src := &Source{Client: c, Prefix: prefix, Batch: 64}
	dir := t.TempDir()
	ctx := context.Background()

	t.Run("parquet", func(t *testing.T) {
		path := filepath.Join(dir, "all.parquet")
		if _, err := ExportFile(ctx, src, path, Options{Format: FormatParquet}); err != nil {
			t.Fatal(err)
		}
		head, rows := readBack(t, "parquet", path)
		types := head["schema"].(map[string]any)
		order := head["order"].([]any)
		for i, col := range Columns {
			if order[i] != col.Name || types[col.Name] != wantParquetTypes[col.Kind] {
				t.Errorf("column %d: %v %v, want %s %s", i, order[i], types[col.Name], col.Name, wantParquetTypes[col.Kind])
			}
		}
		compareRows(t, rows, byID, func(c Column, p person) any { return parquetValue(c, p) })
	})

	t.Run("parquet fields", func(t *testing.T) {
		cols, _ := SelectColumns("last_seen,id,traits,latitude")
		path := filepath.Join(dir, "some.parquet")
		if _, err := ExportFile(ctx, src, path, Options{Format: FormatParquet, Columns: cols}); err != nil {
			t.Fatal(err)
		}
		head, rows := readBack(t, "parquet", path)
		if got := fmt.Sprint(head["order"]); got != "[last_seen id traits latitude]" {
			t.Fatalf("columns %s", got)
		}
		compareRows(t, rows, byID, func(c Column, p person) any { return parquetValue(c, p) }, cols...)
	})

	t.Run("csv", func(t *testing.T) {
		path := filepath.Join(dir, "all.csv")
		if _, err := ExportFile(ctx, src, path, Options{Format: FormatCSV}); err != nil {
			t.Fatal(err)
		}
		head, rows := readBack(t, "csv", path)
		if got, want := fmt.Sprint(head["header"]), fmt.Sprint(names(Columns)); got != want {
			t.Fatalf("header %s, want %s", got, want)
		}
		compareRows(t, rows, byID, func(c Column, p person) any {
			switch c.Name {
			case ColumnTraits:
				b, _ := json.Marshal(parquetValue(c, p))
				return string(b)
			case ColumnAnonymousIDs:
				b, _ := json.Marshal(p.anonIDs())
				if p.anonIDs() == nil {
					b = []byte("[]")
				}
				return string(b)
			case ColumnID:
				return p.id
			}
			if v, ok := p.fields[c.Name]; ok {
				return v
			}
			if c.Kind == KindInt {
				return "0"
			}
			return ""
		})
	})

	t.Run("filters", func(t *testing.T) {
		checkFilters(t, src, people)
	})
}

func compareRows(t *testing.T, rows []map[string]any, byID map[string]person, want func(Column, person) any, cols ...Column) {
	t.Helper()
	if cols == nil {
		cols = Columns
	}
	if len(rows) != len(byID) {
		t.Fatalf("%d rows, want %d", len(rows), len(byID))
	}
	seen := map[string]bool{}
	for _, row := range rows {
		id, _ := row[ColumnID].(string)
		p, ok := byID[id]
		if !ok || seen[id] {
			t.Fatalf("row of %q: unknown or repeated", id)
		}
		seen[id] = true
		for _, c := range cols {
			if got, w := normalize(c, row[c.Name]), want(c, p); !reflect.DeepEqual(got, w) {
				t.Errorf("%s.%s = %#v, want %#v", id, c.Name, got, w)
			}
		}
	}
}

// model is the filters' meaning, written apart from Filter.Match: a
// profile is kept when, for every field named, its value (or "0" for an
// absent counter) is one of the values given, and its last and first seen
// are at or after the cut-offs.
func model(p person, where map[string][]string, active, acquired time.Time) bool {
	for f, vals := range where {
		v, ok := p.fields[f]
		if f == ColumnID {
			v, ok = p.id, true
		}
		if !ok && (f == profile.FieldAppLaunches || f == profile.FieldWebVisits) {
			v, ok = "0", true
		}
		hit := false
		for _, x := range vals {
			hit = hit || (ok && x == v)
		}
		if !hit {
			return false
		}
	}
	after := func(field string, cut time.Time) bool {
		if cut.IsZero() {
			return true
		}
		s, ok := p.fields[field]
		if !ok {
			return false
		}
		tm, _ := time.Parse(time.RFC3339Nano, s)
		return tm.UnixMilli() >= cut.UnixMilli()
	}
	return after(profile.FieldLastSeen, active) && after(profile.FieldFirstSeen, acquired)
}

// checkFilters draws random filters and compares the ids count and export
// keep with the model's.
func checkFilters(t *testing.T, src *Source, people []person) {
	r := rand.New(rand.NewPCG(3, 3))
	choices := map[string][]string{
		profile.FieldCountry:      {"IN", "BR", "US", "XX"},
		profile.FieldCustomerType: {"Gold", "Silver", "Bronze"},
		profile.FieldCity:         {"Pune", "São Paulo", "Washington, D.C."},
		profile.FieldAppLaunches:  {"0", "1", "7"},
		"trait.plan0":             {"annual", "42", ""},
	}
	var fields []string
	for f := range choices {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for i := range 40 {
		var f Filter
		var args []string
		for range r.IntN(3) {
			name := fields[r.IntN(len(fields))]
			cond := name + "=" + choices[name][r.IntN(len(choices[name]))]
			args = append(args, cond)
			if err := f.AddWhere(cond); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(2) == 0 {
			f.ActiveSince = testNow.Add(-time.Duration(r.IntN(40*24)) * time.Hour)
		}
		if r.IntN(3) == 0 {
			f.AcquiredSince = testNow.Add(-time.Duration(r.IntN(60*24)) * time.Hour)
		}
		var want []string
		for _, p := range people {
			if model(p, f.Where, f.ActiveSince, f.AcquiredSince) {
				want = append(want, p.id)
			}
		}
		var buf bytes.Buffer
		st, err := Export(context.Background(), src, &buf, Options{Format: FormatJSONL, Filter: f, Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m struct{ ID string }
			if line != "" && json.Unmarshal([]byte(line), &m) == nil {
				got = append(got, m.ID)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !equal(got, want) || st.Exported != int64(len(want)) {
			t.Errorf("filter %d %v active %v acquired %v: got %d ids, want %d", i, args, f.ActiveSince, f.AcquiredSince, len(got), len(want))
		}
		cst, err := Count(context.Background(), src, f, nil)
		if err != nil || cst.Exported != int64(len(want)) {
			t.Errorf("filter %d: count %d, %v; want %d", i, cst.Exported, err, len(want))
		}
	}
}

func TestExportsReadBackOnRedis(t *testing.T) {
	checkExports(t, testenv.RealRedis(t))
}

// On a Cluster the profiles spread over every master; the export scans
// them all.
func TestExportsReadBackOnRedisCluster(t *testing.T) {
	c := testenv.RealCluster(t)
	var masters atomic.Int32 // ForEachMaster calls the function from a goroutine per master
	_ = c.ForEachMaster(context.Background(), func(context.Context, *redis.Client) error { masters.Add(1); return nil })
	if masters.Load() < 2 {
		t.Fatalf("%d masters: no spread to test", masters.Load())
	}
	checkExports(t, c)
}
