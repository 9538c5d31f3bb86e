package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/testenv"
)

// Series Prometheus makes itself: a running profiled cannot export them.
var prometheusMade = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}

// PromQL words that look like metric names but are not.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
}

// Modifiers followed by a parenthesised list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names an expression selects: identifiers
// that are not functions, aggregations, keywords, label names, strings,
// durations or Grafana variables. It is a lexer, not a parser, which is
// enough for the expressions of a dashboard and a rules file.
func metricNames(expr string) []string {
	var names []string
	r := []rune(expr)
	isIdentStart := func(c rune) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	isIdent := func(c rune) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
	skipSpace := func(i int) int {
		for i < len(r) && (r[i] == ' ' || r[i] == '\t' || r[i] == '\n' || r[i] == '\r') {
			i++
		}
		return i
	}
	// skipString returns the index after the string literal opening at i.
	skipString := func(i int) int {
		q := r[i]
		for i++; i < len(r) && r[i] != q; i++ {
			if r[i] == '\\' && q != '`' {
				i++
			}
		}
		return i + 1
	}
	// skipGroup returns the index after the bracket closing the one at i.
	skipGroup := func(i int, open, close rune) int {
		depth := 0
		for i < len(r) {
			switch c := r[i]; {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(i)
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = skipGroup(i, '{', '}')
		case c == '[':
			i = skipGroup(i, '[', ']')
		case c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '$':
			// Grafana variable: $name, ${name}, $__rate_interval
			i++
			if i < len(r) && r[i] == '{' {
				i = skipGroup(i, '{', '}')
			}
			for i < len(r) && isIdent(r[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// numbers and durations: 0.99, 1e3, 5m, 0x1f
			for i < len(r) && (isIdent(r[i]) || r[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(r) && isIdent(r[i]) {
				i++
			}
			word := string(r[start:i])
			next := skipSpace(i)
			switch {
			case promqlLabelLists[word]:
				if next < len(r) && r[next] == '(' {
					i = skipGroup(next, '(', ')')
				}
			case promqlKeywords[word]:
			case next < len(r) && r[next] == '(':
				// a function or an aggregation
			case startsModifier(r[next:]):
				// an aggregation with its modifier first: sum by (x) (...)
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

// startsModifier tells whether r starts with "by" or "without" and a
// parenthesis.
func startsModifier(r []rune) bool {
	for _, w := range []string{"by", "without"} {
		if rest, ok := strings.CutPrefix(string(r), w); ok && strings.HasPrefix(strings.TrimLeft(rest, " \t\n\r"), "(") {
			return true
		}
	}
	return false
}

func TestMetricNamesInPromQL(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="profiled"} == 0`, []string{"up"}},
		{`sum by (kind) (rate(profiled_events_applied_total{job="profiled", instance=~"$instance"}[$__rate_interval]))`,
			[]string{"profiled_events_applied_total"}},
		{`histogram_quantile(0.99, sum(rate(a_bucket[5m])) by (le))`, []string{"a_bucket"}},
		{`a / on (namespace) group_left b > 0.01 and c offset 5m > bool 1`, []string{"a", "b", "c"}},
		{`sum without (instance) (x) / ignoring(le) group_right(job) y`, []string{"x", "y"}},
		{`time() - max(z{l="a(b) c"}) > 300`, []string{"z"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`deriv(sum by (t) (lag)[10m:1m]) > 0 # lag "growing"`, []string{"lag"}},
		{`count(k8s:ns:metric{a="}"}) * 1e3 + Inf`, []string{"k8s:ns:metric"}},
	} {
		if got := metricNames(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// referencedMetrics returns every metric name the dashboard and the alert
// rules use, with where each is used.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	add := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric name found in %q", where, expr)
		}
		for _, n := range names {
			refs[n] = append(refs[n], where)
		}
	}

	rules := readYAML(t, alertsFile)
	for _, g := range dig1(t, rules, "groups").([]any) {
		for _, r := range dig1(t, g, "rules").([]any) {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			if name == "" {
				name, _ = r["record"].(string)
			}
			add("alert "+name, r["expr"].(string))
		}
	}

	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				add(fmt.Sprintf("panel %q", p.Title), tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^\s*label_values\(\s*(.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		// label_values(selector, label): only the selector names a metric
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[1]
		}
		add("variable "+v.Name, q)
	}
	return refs
}

type dashPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// scrape is one /metrics exposition: the names of its samples and the type
// of each family.
type scrape struct {
	samples map[string]bool
	types   map[string]string
}

func parseExposition(b []byte) scrape {
	s := scrape{samples: map[string]bool{}, types: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			s.samples[line[:i]] = true
		}
	}
	return s
}

// exports tells whether a query for name finds a series: a sample of that
// name, or a histogram's or summary's _bucket, _sum or _count.
func (s scrape) exports(name string) bool {
	if s.samples[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := s.types[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// TestMonitoringMetricsExist runs the real profiled (embedded broker and
// Redis, the sample events) and checks that every metric the dashboard and
// the alert rules use is on its /metrics, so that a renamed metric breaks
// this test instead of a dashboard in production.
func TestMonitoringMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("runs profiled; not with -short")
	}
	refs := referencedMetrics(t)
	// guard the extraction itself: these must have been found
	for _, n := range []string{"profiled_consumer_lag_records", "profiled_redis_write_duration_seconds_bucket", "profiled_events_applied_total", "up"} {
		if _, ok := refs[n]; !ok {
			t.Fatalf("%s not found among the referenced metrics %v: extraction broken?", n, keys(refs))
		}
	}

	sample, err := filepath.Abs("../testdata/sample-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	// without the caller's PROFILED_* variables, so that a developer's
	// settings cannot point the embedded run at a real broker
	p := testenv.Start(t, append(testenv.Environ("PROFILED_"),
		"PROFILED_EMBEDDED=true",
		"PROFILED_EMBEDDED_SAMPLE="+sample,
		"PROFILED_HTTP_ADDR="+addr,
		"PROFILED_DEFAULT_PHONE_REGION=IN",
		"PROFILED_LOG_FORMAT=json",
	), testenv.Profiled(t))

	// profiled_consumer_lag_records appears once a partition has made
	// progress; every other series exists from the start.
	client := &http.Client{Timeout: 2 * time.Second}
	var s scrape
	p.Until(t, 90*time.Second, "profiled_consumer_lag_records on /metrics", func() bool {
		b, err := get(client, "http://"+addr+"/metrics")
		if err != nil {
			return false
		}
		s = parseExposition(b)
		return s.samples["profiled_consumer_lag_records"]
	})

	for _, name := range keys(refs) {
		if prometheusMade[name] || s.exports(name) {
			continue
		}
		t.Errorf("%s is used by %s but profiled does not export it", name, strings.Join(uniq(refs[name]), ", "))
	}
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
