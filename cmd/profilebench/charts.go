package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// The charts make bench writes beside BENCHMARKS.md: hand-written SVG,
// grouped bars with their values printed on them, no library.

// baseline is the stitched workload's make bench before issue 16's work
// (BENCHMARKS.md of 2026-11-29: 1,000,000 records, 100,000 users): the
// "before" of the CPU chart.
var baseline = struct {
	rate                    float64
	profiled, redis, broker float64 // CPU-s per million events
}{rate: 34927, profiled: 12.3, redis: 21.5, broker: 8.0}

// barChart is a grouped bar chart: one group per label, one bar per series.
type barChart struct {
	title, yLabel string
	series        []string
	groups        []barGroup
	format        string // of the value printed above each bar, as fmt's
}

type barGroup struct {
	label  string
	values []float64 // one per series
}

// The chart's geometry, in SVG user units.
const (
	chartW, chartH                             = 720, 400
	marginL, marginR, marginT, marginB         = 80, 20, 50, 70
	plotW, plotH                               = chartW - marginL - marginR, chartH - marginT - marginB
	plotBottom                                 = marginT + plotH
	barGap                             float64 = 0.2 // of a group's width, between groups
)

var palette = []string{"#8c8c8c", "#2b6cb0", "#c05621", "#2f855a"}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// svg renders the chart. Each bar is a rect of class "bar" with its series,
// group and value in data- attributes, for readers and tests.
func (c barChart) svg() []byte {
	top := 0.0
	for _, g := range c.groups {
		for _, v := range g.values {
			top = max(top, v)
		}
	}
	top = niceMax(top)
	y := func(v float64) float64 { return plotBottom - v/top*plotH }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, esc(c.title))
	// y axis: five ticks with grid lines, and its label
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e2e2e2"/>`+"\n", marginL, y(v), marginL+plotW, y(v))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginL-6, y(v)+4, esc(tickLabel(v)))
	}
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">%s</text>`+"\n", marginT+plotH/2, marginT+plotH/2, esc(c.yLabel))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginL, marginT, marginL, plotBottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginL, plotBottom, marginL+plotW, plotBottom)
	// bars
	gw := float64(plotW) / float64(max(len(c.groups), 1))
	bw := gw * (1 - barGap) / float64(max(len(c.series), 1))
	for gi, g := range c.groups {
		x0 := float64(marginL) + float64(gi)*gw + gw*barGap/2
		for si, v := range g.values {
			x := x0 + float64(si)*bw
			fmt.Fprintf(&b, `<rect class="bar" data-series="%s" data-group="%s" data-value="%g" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				esc(c.series[si]), esc(g.label), v, x, y(v), bw, plotBottom-y(v), palette[si%len(palette)])
			if c.format != "" {
				fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+bw/2, y(v)-3, esc(fmt.Sprintf(c.format, v)))
			}
		}
		fmt.Fprintf(&b, `<text class="group" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x0+gw*(1-barGap)/2, plotBottom+18, esc(g.label))
	}
	// legend, below the axis
	if len(c.series) > 1 {
		for si, name := range c.series {
			x := marginL + si*170
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", x, chartH-24, palette[si%len(palette)])
			fmt.Fprintf(&b, `<text class="legend" x="%d" y="%d">%s</text>`+"\n", x+17, chartH-14, esc(name))
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func tickLabel(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// latencyHistogram bins sorted latencies (ms) into ten equal bins from 0
// to the 99th percentile rounded up, and one for the rest above it; each
// bin holds the percentage of probes in it.
func latencyHistogram(ms []float64) []barGroup {
	if len(ms) == 0 {
		return nil
	}
	hi := niceMax(ms[min(int(0.99*float64(len(ms))), len(ms)-1)])
	width := hi / 10
	counts := make([]float64, 11)
	for _, v := range ms {
		counts[min(int(v/width), 10)]++
	}
	var out []barGroup
	for i, n := range counts {
		label := fmt.Sprintf("%s–%s", tickLabel(float64(i)*width), tickLabel(float64(i+1)*width))
		if i == 10 {
			label = "> " + tickLabel(hi)
		}
		out = append(out, barGroup{label: label, values: []float64{100 * n / float64(len(ms))}})
	}
	return out
}

// charts writes the run's three charts beside the Markdown file (named
// after it: BENCHMARKS-cpu.svg, …) and returns the Markdown that shows
// them.
func (r *results) charts(s settings) (string, error) {
	dir := filepath.Dir(s.md)
	stem := strings.TrimSuffix(filepath.Base(s.md), filepath.Ext(s.md))
	cpu := barChart{
		title:  fmt.Sprintf("CPU-s per million events by process (pipeline, %dk records)", r.Events/1000),
		yLabel: "CPU-seconds per million events", series: []string{"before (2026-11-29)", "this run"}, format: "%.1f",
		groups: []barGroup{
			{"profiled", []float64{baseline.profiled, r.CPUProfiled}},
			{"Redis", []float64{baseline.redis, r.CPURedis}},
			{"Kafka broker", []float64{baseline.broker, r.CPUBroker}},
			{"in all", []float64{baseline.profiled + baseline.redis + baseline.broker, r.CPUTotal}},
		},
	}
	lat := barChart{
		title:  fmt.Sprintf("Latency of %d probes at %d events/s (p50 %.1f ms, p99 %.1f ms)", len(r.latencyMS), s.latencyRate, r.P50, r.P99),
		yLabel: "% of probes", series: []string{"probes"}, format: "%.1f", groups: latencyHistogram(r.latencyMS),
	}
	users := barChart{title: "Pipeline events/s by distinct users", yLabel: "events/s", series: []string{"events/s"}, format: "%.0f"}
	for _, u := range r.ByUsers {
		users.groups = append(users.groups, barGroup{fmt.Sprintf("%d users (%d records)", u.Users, u.Events), []float64{u.Rate}})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var md strings.Builder
	md.WriteString("\n## Charts\n\n")
	for _, c := range []struct {
		name, alt string
		chart     barChart
	}{
		{"cpu", "CPU per million events by process, before and after", cpu},
		{"latency", "latency distribution at the latency rate", lat},
		{"users", "events/s against distinct users", users},
	} {
		file := stem + "-" + c.name + ".svg"
		if err := os.WriteFile(filepath.Join(dir, file), c.chart.svg(), 0o644); err != nil {
			return "", err
		}
		fmt.Fprintf(&md, "![%s](%s)\n\n", c.alt, file)
	}
	return md.String(), nil
}
