package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type results struct {
	Events        int     `json:"events"`
	Pipeline      float64 `json:"pipeline_events_per_sec"`
	RawConsume    float64 `json:"raw_consume_events_per_sec"`
	SinkOnly      float64 `json:"sink_only_events_per_sec"`
	Naive         float64 `json:"naive_events_per_sec"`
	RatioVsLimit  float64 `json:"ratio_vs_limit"`
	RatioVsNaive  float64 `json:"ratio_vs_naive"`
	P50           float64 `json:"p50_latency_ms"`
	P99           float64 `json:"p99_latency_ms"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`

	split         map[string]float64
	sinkSplit     map[string]float64
	latencyNote   string
	latencyWindow string
	redisVersion  string
}

func (r *results) write(s settings) error {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| pipeline (profiled, first offset to zero lag) | %.0f events/s | |\n", r.Pipeline)
	fmt.Fprintf(&b, "| raw consume (kafka-go, no decoding) | %.0f events/s | bound |\n", r.RawConsume)
	fmt.Fprintf(&b, "| sink only (Redis scripts, pre-decoded) | %.0f events/s | bound |\n", r.SinkOnly)
	fmt.Fprintf(&b, "| naive baseline (%d records) | %.0f events/s | |\n", s.naiveEvents, r.Naive)
	fmt.Fprintf(&b, "| ratio_vs_limit | %.2f | ≥ 0.7 %s |\n", r.RatioVsLimit, verdict(r.RatioVsLimit >= 0.7))
	fmt.Fprintf(&b, "| ratio_vs_naive | %.1f | ≥ 20 %s |\n", r.RatioVsNaive, verdict(r.RatioVsNaive >= 20))
	fmt.Fprintf(&b, "| latency p50 at %d events/s | %.1f ms | |\n", s.latencyRate, r.P50)
	fmt.Fprintf(&b, "| latency p99 at %d events/s | %.1f ms | ≤ 50 %s |\n", s.latencyRate, r.P99, verdict(r.P99 <= 50))
	fmt.Fprintf(&b, "| peak RSS of profiled | %.1f MiB | ≤ 150 %s |\n", r.PeakRSSMiB, verdict(r.PeakRSSMiB <= 150))
	fmt.Fprintf(&b, "| CPU of profiled per million events | %.1f s | |\n", r.CPUPerMillion)
	table := b.String()
	fmt.Println(table)

	var md strings.Builder
	fmt.Fprintf(&md, "# Benchmarks\n\nWritten by `make bench` (`cmd/profilebench`) on %s. Every figure below comes from one run on one machine;\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	md.WriteString("the machines are shared, so read the ratios (measured side by side) before the absolute numbers.\n\n")
	fmt.Fprintf(&md, "- Machine: %d cores, %s\n- Go %s, Apache Kafka %s (one KRaft node), Redis %s\n", runtime.NumCPU(), cpuModel(), strings.TrimPrefix(runtime.Version(), "go"), s.kafkaVersion, r.redisVersion)
	fmt.Fprintf(&md, "- Workload: %d records over %d users (Zipf 1.1), 70%% launches, 25%% visits, 5%% identify, 1%% malformed, 2%% producer duplicates, times shuffled ±10 min, %d partitions keyed by userId, else anonymousId; identity journeys: a third of the users start anonymous and sign up at a fixed point of the stream (5%% of their later events still anonymous, arriving after the link), the others carry their own device's anonymous id (one link each)\n", s.events, s.users, s.partitions)
	fmt.Fprintf(&md, "- profiled settings: batch size %d, batch time 1ms (default), dedupe window 24h\n\n", s.batchSize)
	md.WriteString(table)
	fmt.Fprintf(&md, "\nLatency: %s. Measured from the return of the producer's acknowledged write to the Redis keyspace notification of the probe profile's write.\n\nDuring the latency window: %s.\n", r.latencyNote, r.latencyWindow)
	if r.split != nil {
		fmt.Fprintf(&md, "\nCPU during the pipeline run (%.1f s wall, 2 cores = %.1f core-seconds available): profiled %.1f s, Redis %.1f s, Kafka broker %.1f s.\n",
			r.split["wall"], 2*r.split["wall"], r.split["profiled"], r.split["redis"], r.split["kafka"])
	}
	if r.sinkSplit != nil {
		fmt.Fprintf(&md, "\nCPU during the sink-only run (%.1f s wall): Redis %.1f s, profilebench (the sink's client) %.1f s.\n",
			r.sinkSplit["wall"], r.sinkSplit["redis"], r.sinkSplit["bench"])
	}
	if notes, err := os.ReadFile(filepath.Join("cmd", "profilebench", "NOTES.md")); err == nil {
		md.WriteString("\n")
		md.Write(notes)
	}
	if cl, err := os.ReadFile(filepath.Join("cmd", "profilebench", "CLUSTER.md")); err == nil {
		md.WriteString("\n") // make bench-cluster's last table
		md.Write(cl)
	}
	if err := os.WriteFile(s.md, []byte(md.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(s.out, append(j, '\n'), 0o644)
}
