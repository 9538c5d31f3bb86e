package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/profiled/profiled/profile"
)

// TestSummaryKeys: the JSON summary has every key issue 16 asks for, even
// when a measure is zero.
func TestSummaryKeys(t *testing.T) {
	j, err := json.Marshal(&results{})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(j, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pipeline_events_per_sec", "raw_consume_events_per_sec", "redis_floor_events_per_sec",
		"sink_only_events_per_sec", "naive_events_per_sec", "ratio_vs_raw", "ratio_vs_floor", "ratio_vs_naive",
		"ratio_vs_limit", "p50_latency_ms", "p99_latency_ms", "peak_rss_mib", "cpu_s_per_million_profiled",
		"cpu_s_per_million_redis", "cpu_s_per_million_broker", "cpu_s_per_million_total",
		"evalsha_usec_per_call", "floor_hset_usec_per_call", "by_users", "decode_ceiling_events_per_sec",
		"store_ceiling_events_per_sec", "dedupe_ceiling_events_per_sec", "decode_ceiling_vs_raw", "store_ceiling_vs_raw",
		"dedupe_ceiling_vs_raw"} {
		if _, ok := got[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
}

func TestRatios(t *testing.T) {
	r := results{Pipeline: 30, RawConsume: 150, SinkOnly: 40, RedisFloor: 400, Naive: 0.3,
		DecodeCeiling: 75, StoreCeiling: 60, DedupeCeiling: 45}
	r.ratios()
	for name, c := range map[string][2]float64{"raw": {r.RatioVsRaw, 0.2}, "floor": {r.RatioVsFloor, 0.1},
		"limit": {r.RatioVsLimit, 0.75}, "naive": {r.RatioVsNaive, 100}, "decode ceiling": {r.DecodeCeilingVsRaw, 0.5},
		"store ceiling": {r.StoreCeilingVsRaw, 0.4}, "dedupe ceiling": {r.DedupeCeilingVsRaw, 0.3}} {
		if math.Abs(c[0]-c[1]) > 1e-9 {
			t.Errorf("ratio_vs_%s %v, want %v", name, c[0], c[1])
		}
	}
	var zero results
	zero.ratios() // no division by zero into NaN, which JSON cannot hold
	if _, err := json.Marshal(&zero); err != nil {
		t.Fatal(err)
	}
}

func TestSetCPU(t *testing.T) {
	var u usersRun
	u.setCPU(map[string]float64{"profiled": 1, "redis": 2, "kafka": 0.5, "wall": 9}, 500_000)
	if u.CPUProfiled != 2 || u.CPURedis != 4 || u.CPUBroker != 1 || u.CPUTotal != 7 {
		t.Fatalf("%+v", u)
	}
}

// svgBar is a bar as the SVG holds it.
type svgBar struct {
	series, group string
	value         float64
	y, height     float64
}

// parseSVG checks that b is well-formed XML with an svg root and returns
// its bars and texts.
func parseSVG(t *testing.T, b []byte) ([]svgBar, []string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	var bars []svgBar
	var texts []string
	root := ""
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
			}
			inText = e.Name.Local == "text"
			attr := map[string]string{}
			for _, a := range e.Attr {
				attr[a.Name.Local] = a.Value
			}
			if e.Name.Local == "rect" && attr["class"] == "bar" {
				f := func(k string) float64 {
					v, err := strconv.ParseFloat(attr[k], 64)
					if err != nil {
						t.Fatalf("rect %s=%q: %v", k, attr[k], err)
					}
					return v
				}
				bars = append(bars, svgBar{attr["data-series"], attr["data-group"], f("data-value"), f("y"), f("height")})
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return bars, texts
}

// TestBarChartSVG: well-formed SVG whose bars stand on the axis with
// heights in proportion to their values, labelled with the groups, the
// series and the values.
func TestBarChartSVG(t *testing.T) {
	c := barChart{title: "CPU <per> million & more", yLabel: "s", series: []string{"before", "after"}, format: "%.1f",
		groups: []barGroup{{"profiled", []float64{12.3, 6}}, {"Redis", []float64{21.5, 9.5}}, {"broker", []float64{8, 0}}}}
	bars, texts := parseSVG(t, c.svg())
	if len(bars) != 6 {
		t.Fatalf("%d bars, want 6", len(bars))
	}
	top := niceMax(21.5) // 50
	for i, b := range bars {
		g, si := c.groups[i/2], i%2
		if b.group != g.label || b.series != c.series[si] || b.value != g.values[si] {
			t.Errorf("bar %d: %+v, want %s/%s %v", i, b, g.label, c.series[si], g.values[si])
		}
		if want := b.value / top * plotH; math.Abs(b.height-want) > 0.06 {
			t.Errorf("bar %d (%v): height %.2f, want %.2f", i, b.value, b.height, want)
		}
		if math.Abs(b.y+b.height-plotBottom) > 0.06 {
			t.Errorf("bar %d does not stand on the axis: y %.1f + height %.1f", i, b.y, b.height)
		}
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"CPU <per> million & more", "profiled", "Redis", "broker", "before", "after", "12.3", "21.5", "9.5", "50", "0"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no text %q in %s", want, joined)
		}
	}
}

func TestNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.7: 1, 8: 10, 12.3: 20, 21.5: 50, 41.8: 50, 34927: 50000, 100: 100} {
		if got := niceMax(in); got != want {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestLatencyHistogram(t *testing.T) {
	ms := make([]float64, 0, 1000)
	for i := range 1000 {
		ms = append(ms, float64(i)/100) // 0 … 9.99 ms
	}
	for i := 995; i < 1000; i++ {
		ms[i] = 70 // slow probes, past the p99
	}
	h := latencyHistogram(ms)
	if len(h) != 11 {
		t.Fatalf("%d bins", len(h))
	}
	sum := 0.0
	for _, g := range h {
		sum += g.values[0]
	}
	if math.Abs(sum-100) > 1e-9 {
		t.Errorf("bins add up to %v%%", sum)
	}
	if h[10].label != "> 10" || h[10].values[0] != 0.5 || h[0].label != "0–1" || h[0].values[0] != 10 {
		t.Errorf("bins %+v", h)
	}
	if latencyHistogram(nil) != nil {
		t.Error("bins of no probes")
	}
}

// TestCharts: the three files land beside the Markdown file, named after
// it, and the Markdown links them by relative path.
func TestCharts(t *testing.T) {
	dir := t.TempDir()
	r := results{Events: 1000, Users: 100, CPUProfiled: 5, CPURedis: 6, CPUBroker: 7, CPUTotal: 18, latencyMS: []float64{1, 2, 3},
		ByUsers: []usersRun{{Users: 100, Events: 1000, Rate: 5000}, {Users: 1000, Events: 300, Rate: 4000}}}
	md, err := r.charts(settings{md: filepath.Join(dir, "B.md"), latencyRate: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu", "latency", "users"} {
		file := "B-" + name + ".svg"
		if !strings.Contains(md, "]("+file+")") {
			t.Errorf("no link to %s in\n%s", file, md)
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		bars, _ := parseSVG(t, b)
		if name == "users" && (len(bars) != 2 || bars[1].value != 4000) {
			t.Errorf("users chart bars %+v", bars)
		}
		if name == "cpu" && (len(bars) != 8 || bars[1].value != 5 || bars[0].value != baseline.profiled) {
			t.Errorf("cpu chart bars %+v", bars)
		}
	}
}

func TestKeyKind(t *testing.T) {
	for key, want := range map[string]string{
		"p:profile:{u1}": "profile", "p:profile:{anon:a1}": "profile", "p:profile:{u1}:m": "bookkeeping",
		"p:profile:{u1}:d": "bookkeeping", "p:profile:{u1}:links": "links", "p:profile:{anon:a1}:link": "links",
		"p:profile:{anon:a1}:snap": "links", "p:other": "", "p:profile:{u1}:x": "",
	} {
		if got := keyKind(key); got != want {
			t.Errorf("keyKind(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestFloorHSets: one HSET per profile the batch changes, with its
// resulting fields and times; an update of links alone writes nothing.
func TestFloorHSets(t *testing.T) {
	u := profile.NewUpdate("u1")
	u.Fields = map[string]profile.Stamped{"email": {Value: "a@b", Time: 5}}
	u.First, u.Last = profile.Seen{Time: 1, Channel: "app"}, profile.Seen{Time: 9, Channel: "app"}
	links := profile.NewUpdate("u2")
	links.Links = []string{"a2"}
	got := floorHSets("f:", [][]*profile.Update{{u, links}, {}})
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 0 {
		t.Fatalf("%v", got)
	}
	want := []any{"hset", "f:profile:{u1}", "email", "a@b", "first_seen", "1", "last_seen", "9"}
	if len(got[0][0]) != len(want) {
		t.Fatalf("%v, want %v", got[0][0], want)
	}
	for i := range want {
		if got[0][0][i] != want[i] {
			t.Fatalf("%v, want %v", got[0][0], want)
		}
	}
}

func TestParseCallgrind(t *testing.T) {
	out := []byte(`--------------------------------------------------------------------------------
Ir                      file:function
--------------------------------------------------------------------------------
6,219,101,821 (100.0%)  PROGRAM TOTALS

1,756,788,830 (29.41%)  < ???:processCommand (5,000x) [/usr/bin/redis-server]
1,756,788,830 (29.41%)  *  ???:evalShaCommand [/usr/bin/redis-server]

1,487,382,924 (24.90%)  < ???:luaCallFunction (5,000x) [/usr/bin/redis-server]
        1,900 ( 0.00%)  < ???:scriptingInit (1x) [/usr/bin/redis-server]
1,487,385,885 (24.90%)  *  ???:lua_pcall [/usr/bin/redis-server]

      100,000 ( 0.01%)  < ???:luaRedisPcall (7x) [/usr/bin/redis-server]
  545,539,830 ( 9.12%)  < ???:0x0000000000142a90 (56,039x) [/usr/bin/redis-server]
  545,639,830 ( 9.13%)  *  server.c:scriptCall [/usr/bin/redis-server]

  245,400,503 ( 3.95%)  *  ./stdlib/./stdlib/strtod_l.c:____strtod_l_internal [/usr/lib/x86_64-linux-gnu/libc.so.6]
  200,000,000 ( 3.00%)  *  ???:call'2 [/usr/bin/redis-server]

   19,829,947 ( 0.33%)  *  ???:hmgetCommand [/usr/bin/redis-server]
      100,000 ( 0.00%)  *  ???:hmgetCommand [/usr/bin/redis-server]
`)
	c := parseCallgrind(out)
	want := map[string]int64{"evalShaCommand": 1756788830, "lua_pcall": 1487385885, "scriptCall": 545639830,
		"____strtod_l_internal": 245400503, "hmgetCommand": 19829947}
	if len(c.incl) != len(want) {
		t.Fatalf("parsed %v, want %v", c.incl, want)
	}
	for k, v := range want {
		if c.incl[k] != v {
			t.Fatalf("%s = %d, want %d (all: %v)", k, c.incl[k], v, c.incl)
		}
	}
	if c.caller["scriptCall"] != "0x0000000000142a90" || c.caller["lua_pcall"] != "luaCallFunction" || c.caller["hmgetCommand"] != "" {
		t.Fatalf("callers %v", c.caller)
	}
}
