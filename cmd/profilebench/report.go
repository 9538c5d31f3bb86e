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

// results is the run's summary: its JSON form is $BENCH_OUT (every key
// always present; TestSummaryKeys).
type results struct {
	Events        int     `json:"events"`
	Users         int     `json:"users"`
	Pipeline      float64 `json:"pipeline_events_per_sec"`
	RawConsume    float64 `json:"raw_consume_events_per_sec"`
	RedisFloor    float64 `json:"redis_floor_events_per_sec"`
	DecodeCeiling float64 `json:"decode_ceiling_events_per_sec"` // raw consume + decode and fold
	StoreCeiling  float64 `json:"store_ceiling_events_per_sec"`  // and the floor's HSETs
	DedupeCeiling float64 `json:"dedupe_ceiling_events_per_sec"` // and a ZADD of messageIds
	SinkOnly      float64 `json:"sink_only_events_per_sec"`
	Naive         float64 `json:"naive_events_per_sec"`
	RatioVsRaw    float64 `json:"ratio_vs_raw"`   // pipeline / raw consume
	RatioVsFloor  float64 `json:"ratio_vs_floor"` // sink only / Redis floor
	RatioVsNaive  float64 `json:"ratio_vs_naive"`
	RatioVsLimit  float64 `json:"ratio_vs_limit"` // pipeline / sink only (the lower bound)
	// each ceiling / raw consume: the most ratio_vs_raw could be
	DecodeCeilingVsRaw float64    `json:"decode_ceiling_vs_raw"`
	StoreCeilingVsRaw  float64    `json:"store_ceiling_vs_raw"`
	DedupeCeilingVsRaw float64    `json:"dedupe_ceiling_vs_raw"`
	P50                float64    `json:"p50_latency_ms"`
	P99                float64    `json:"p99_latency_ms"`
	PeakRSSMiB         float64    `json:"peak_rss_mib"`
	CPUPerMillion      float64    `json:"cpu_seconds_per_million"` // profiled's, as before
	CPUProfiled        float64    `json:"cpu_s_per_million_profiled"`
	CPURedis           float64    `json:"cpu_s_per_million_redis"`
	CPUBroker          float64    `json:"cpu_s_per_million_broker"`
	CPUTotal           float64    `json:"cpu_s_per_million_total"`
	ScriptUsec         float64    `json:"evalsha_usec_per_call"`    // Redis's own, during sink only
	FloorHSetUsec      float64    `json:"floor_hset_usec_per_call"` // Redis's own, during the floor
	ByUsers            []usersRun `json:"by_users"`

	split         map[string]float64
	sinkSplit     map[string]float64
	floor         floorResult
	raw           ceilingResult
	decodeCeil    ceilingResult
	storeCeil     ceilingResult
	dedupeCeil    ceilingResult
	scriptCalls   int64
	latencyMS     []float64
	latencyNote   string
	latencyWindow string
	redisVersion  string
	warm          usersRun // the untimed warm-up pipeline
}

// ratios sets the ratios from the rates.
func (r *results) ratios() {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	r.RatioVsRaw = div(r.Pipeline, r.RawConsume)
	r.RatioVsFloor = div(r.SinkOnly, r.RedisFloor)
	r.RatioVsLimit = div(r.Pipeline, min(r.RawConsume, r.SinkOnly))
	r.RatioVsNaive = div(r.Pipeline, r.Naive)
	r.DecodeCeilingVsRaw = div(r.DecodeCeiling, r.RawConsume)
	r.StoreCeilingVsRaw = div(r.StoreCeiling, r.RawConsume)
	r.DedupeCeilingVsRaw = div(r.DedupeCeiling, r.RawConsume)
}

// scaleSection is the cost at each number of distinct users measured, with
// Redis memory per profile and what it makes for 10 and 100 million.
func (r *results) scaleSection() string {
	if len(r.ByUsers) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n### How cost grows with distinct users\n\n")
	b.WriteString("The pipeline measure at each number of distinct users (the second on fewer records of its own topic, to keep `make bench` short: `BENCH_LARGE_USERS`, `BENCH_LARGE_EVENTS`). Redis memory per profile is `MEMORY USAGE … SAMPLES 0` (every element counted) of every key of each kind, summed, over the number of profile hashes (anonymous profiles included), right after the run: the profile hash; bookkeeping (`:m` meta hash and `:d` dedupe set); links (`:links` of a user, `:link` of an anonymous id).\n\n")
	b.WriteString("| users | records | events/s | CPU-s per million: profiled | Redis | broker | in all | profiles | bytes per profile: hash | bookkeeping | links | in all | Redis for 10 million | for 100 million |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	gib := func(bytes float64, n float64) string { return fmt.Sprintf("%.1f GiB", bytes*n/(1<<30)) }
	for _, u := range r.ByUsers {
		m := u.Memory
		fmt.Fprintf(&b, "| %d | %d | %.0f | %.1f | %.1f | %.1f | %.1f | %d | %.0f | %.0f | %.0f | %.0f | %s | %s |\n",
			u.Users, u.Events, u.Rate, u.CPUProfiled, u.CPURedis, u.CPUBroker, u.CPUTotal, m.Profiles,
			m.Profile, m.Bookkeeping, m.Links, m.Total(), gib(m.Total(), 1e7), gib(m.Total(), 1e8))
	}
	b.WriteString("\nThe sizing columns multiply the measured bytes per profile (Redis's own overhead per key included, not its fragmentation or a replica); the dedupe sets hold a profile's recent messageIds, so bookkeeping grows with events per profile within the dedupe window, not with profiles alone.\n")
	return b.String()
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
	fmt.Fprintf(&b, "| decode ceiling (raw consume + profiled's decoding and folding, on every core; no Redis) | %.0f events/s (%.2f of raw consume) | ceiling |\n", r.DecodeCeiling, r.DecodeCeilingVsRaw)
	fmt.Fprintf(&b, "| store ceiling (decode ceiling + each batch's profile fields as plain pipelined HSETs) | %.0f events/s (%.2f) | ceiling |\n", r.StoreCeiling, r.StoreCeilingVsRaw)
	fmt.Fprintf(&b, "| dedupe ceiling (store ceiling + a ZADD of each profile's messageIds) | %.0f events/s (%.2f) | ceiling |\n", r.DedupeCeiling, r.DedupeCeilingVsRaw)
	fmt.Fprintf(&b, "| sink only (Redis scripts, pre-decoded) | %.0f events/s | bound |\n", r.SinkOnly)
	fmt.Fprintf(&b, "| Redis floor (the same batches' profile fields as plain pipelined HSETs) | %.0f events/s | floor |\n", r.RedisFloor)
	fmt.Fprintf(&b, "| naive baseline (%d records) | %.0f events/s | |\n", s.naiveEvents, r.Naive)
	fmt.Fprintf(&b, "| ratio_vs_raw (pipeline / raw consume) | %.2f | ≥ 0.35 %s (the dedupe ceiling's: %.2f) |\n", r.RatioVsRaw, verdict(r.RatioVsRaw >= 0.35), r.DedupeCeilingVsRaw)
	fmt.Fprintf(&b, "| ratio_vs_floor (sink only / Redis floor) | %.2f | |\n", r.RatioVsFloor)
	fmt.Fprintf(&b, "| ratio_vs_limit (pipeline / sink only) | %.2f | ≥ 0.7 %s |\n", r.RatioVsLimit, verdict(r.RatioVsLimit >= 0.7))
	fmt.Fprintf(&b, "| ratio_vs_naive | %.1f | ≥ 100 %s |\n", r.RatioVsNaive, verdict(r.RatioVsNaive >= 100))
	fmt.Fprintf(&b, "| latency p50 at %d events/s | %.1f ms | |\n", s.latencyRate, r.P50)
	fmt.Fprintf(&b, "| latency p99 at %d events/s | %.1f ms | ≤ 50 %s |\n", s.latencyRate, r.P99, verdict(r.P99 <= 50))
	fmt.Fprintf(&b, "| peak RSS of profiled | %.1f MiB | ≤ 150 %s |\n", r.PeakRSSMiB, verdict(r.PeakRSSMiB <= 150))
	fmt.Fprintf(&b, "| CPU of profiled per million events | %.1f s | ≤ 10 %s |\n", r.CPUProfiled, verdict(r.CPUProfiled <= 10))
	fmt.Fprintf(&b, "| CPU of Redis per million events | %.1f s | ≤ 10 %s |\n", r.CPURedis, verdict(r.CPURedis <= 10))
	fmt.Fprintf(&b, "| CPU of the broker per million events | %.1f s | |\n", r.CPUBroker)
	fmt.Fprintf(&b, "| CPU in all per million events | %.1f s | ≤ 30 %s |\n", r.CPUTotal, verdict(r.CPUTotal <= 30))
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
	if r.warm.Events > 0 {
		fmt.Fprintf(&md, "\nBefore it, untimed: the same pipeline over the same topic in a group and key space of its own (removed afterwards), so that the measured run finds the freshly started broker's fetch, commit and produce paths compiled (a long-running broker has no JIT to pay). The warm-up run: %.0f events/s; CPU per million events: profiled %.1f s, Redis %.1f s, broker %.1f s.\n",
			r.warm.Rate, r.warm.CPUProfiled, r.warm.CPURedis, r.warm.CPUBroker)
	}
	if r.sinkSplit != nil {
		fmt.Fprintf(&md, "\nCPU during the sink-only run (%.1f s wall): Redis %.1f s, profilebench (the sink's client) %.1f s.\n",
			r.sinkSplit["wall"], r.sinkSplit["redis"], r.sinkSplit["bench"])
		fmt.Fprintf(&md, "\nThe script alone: during sink only Redis ran %d `EVALSHA` calls (every script the sink runs: the apply script and the link scripts; %.2f per record) at %.1f µs each of its own time (`INFO commandstats` `usec_per_call`, reset before the run; the calls inside the scripts included).\n",
			r.scriptCalls, float64(r.scriptCalls)/float64(max(r.Events, 1)), r.ScriptUsec)
	}
	if r.floor.hsets > 0 {
		fmt.Fprintf(&md, "\nThe Redis floor (%.1f s wall): the sink-only run's batches, each profile's resulting fields written as one plain `HSET` (%.1f fields on average) in one pipeline per batch, into a scratch key space removed afterwards — no script, no bookkeeping, no dedupe, no links: what any store of these profiles must at least do. %d `HSET`s at %.1f µs each of Redis's own time; Redis CPU %.1f s.\n",
			r.floor.wallS, r.floor.fieldsPer, r.floor.hsets, r.FloorHSetUsec, r.floor.redisCPU)
	}
	if r.dedupeCeil.split != nil {
		c := func(x ceilingResult) string {
			return fmt.Sprintf("%.1f s wall; CPU-s per million: profilebench %.1f, broker %.1f, Redis %.1f",
				x.split["wall"], x.perMillion("bench", r.Events), x.perMillion("kafka", r.Events), x.perMillion("redis", r.Events))
		}
		fmt.Fprintf(&md, "\nThe ceilings: raw consume (%.1f s wall; CPU-s per million: profilebench %.1f, broker %.1f) with, on top, only the least that profiled must do with every record, each in a fresh group over the same topic, in batches of %d records committed after their writes: decoding and folding with profiled's own decoder on one goroutine per core (%s); then also each batch's resulting profile fields as plain pipelined HSETs, as in the floor (%s); then also one ZADD per profile of its records' messageIds, into a set beside it, reading nothing back (%s). No merge with what Redis holds, no links, no dead letters, no metrics: no implementation of the contract on this reader, this decoder and this Redis can be faster than the dedupe ceiling, so its ratio to raw consume is the most `ratio_vs_raw` can be here.\n",
			r.raw.split["wall"], r.raw.perMillion("bench", r.Events), r.raw.perMillion("kafka", r.Events), s.batchSize, c(r.decodeCeil), c(r.storeCeil), c(r.dedupeCeil))
	}
	md.WriteString(r.scaleSection())
	charts, err := r.charts(s)
	if err != nil {
		return err
	}
	md.WriteString(charts)
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
