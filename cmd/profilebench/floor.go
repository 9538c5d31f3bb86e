package main

// The Redis floor (redisFloor) and the Redis-side cost of a command
// (commandStat).

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// commandStat reads one command's calls and usec_per_call from INFO
// commandstats (since the last CONFIG RESETSTAT).
func commandStat(ctx context.Context, rdb *redis.Client, cmd string) (calls int64, usecPerCall float64) {
	info, err := rdb.InfoMap(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0
	}
	for _, kv := range strings.Split(info["Commandstats"]["cmdstat_"+cmd], ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "calls":
			calls, _ = strconv.ParseInt(v, 10, 64)
		case "usec_per_call":
			usecPerCall, _ = strconv.ParseFloat(v, 64)
		}
	}
	return calls, usecPerCall
}

// floorResult is what the Redis floor measured.
type floorResult struct {
	rate      float64
	hsets     int64   // HSET calls
	hsetUsec  float64 // Redis's own µs per HSET
	redisCPU  float64 // Redis CPU seconds over the run
	wallS     float64
	fieldsPer float64 // fields per HSET, on average
}

// floorHSets turns each folded batch into the plain HSETs that store its
// resulting profile fields (floorBatch).
func floorHSets(prefix string, batches [][]*profile.Update) [][][]any {
	out := make([][][]any, 0, len(batches))
	for _, b := range batches {
		out = append(out, floorBatch(prefix, b))
	}
	return out
}

// floorBatch is the plain HSETs that store a folded batch's resulting
// profile fields: field name to value, and the first and last seen times.
// An update that changes no profile (links alone) writes nothing.
func floorBatch(prefix string, b []*profile.Update) [][]any {
	var cmds [][]any
	for _, u := range b {
		if u.Empty() {
			continue
		}
		args := make([]any, 0, 2+2*len(u.Fields)+4)
		args = append(args, "hset", sink.Key(prefix, u.ProfileID))
		for name, f := range u.Fields {
			args = append(args, name, f.Value)
		}
		if !u.First.IsZero() {
			args = append(args, "first_seen", strconv.FormatInt(u.First.Time, 10), "last_seen", strconv.FormatInt(u.Last.Time, 10))
		}
		if len(args) > 2 {
			cmds = append(cmds, args)
		}
	}
	return cmds
}

// redisFloor is what any store of these profiles must at least do: the
// sink-only run's batches, each written as plain pipelined HSETs of the
// profiles' resulting fields into a scratch key space (prefix, removed
// afterwards), one pipeline per batch, in order. No script, no
// bookkeeping, no dedupe, no links.
func redisFloor(ctx context.Context, s settings, rdb *redis.Client, prefix string, batches [][]*profile.Update) (floorResult, error) {
	cmds := floorHSets(prefix, batches)
	_, redisPid := servicePids(ctx, s)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		return floorResult{}, err
	}
	r0 := cpuSeconds(redisPid)
	start := time.Now()
	fields := 0
	for _, b := range cmds {
		if len(b) == 0 {
			continue
		}
		p := rdb.Pipeline()
		for _, c := range b {
			p.Do(ctx, c...)
			fields += (len(c) - 2) / 2
		}
		if _, err := p.Exec(ctx); err != nil {
			return floorResult{}, err
		}
	}
	d := time.Since(start)
	f := floorResult{rate: float64(s.events) / d.Seconds(), redisCPU: cpuSeconds(redisPid) - r0, wallS: d.Seconds()}
	f.hsets, f.hsetUsec = commandStat(ctx, rdb, "hset")
	f.fieldsPer = float64(fields) / float64(max(f.hsets, 1))
	if _, err := dropPrefix(ctx, rdb, prefix); err != nil {
		return f, fmt.Errorf("clearing the floor's scratch keys: %w", err)
	}
	return f, nil
}
