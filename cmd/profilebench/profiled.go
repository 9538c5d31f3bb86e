package main

// The pipeline measure: profiled from the first offset to zero lag.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/profiled/profiled/consumer"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

func waitCaughtUp(ctx context.Context, conn kafkaconn.Config, group, topic string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		offs, err := conn.GroupOffsets(ctx, group, topic)
		if err == nil && len(offs) > 0 && kafkaconn.CaughtUp(offs) {
			committed := true
			for _, po := range offs {
				committed = committed && po.Committed >= 0
			}
			if committed {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("group %s not caught up within %s", group, limit)
}

type pipeResult struct {
	rate, cpu, rssMiB float64
	split             map[string]float64
	batches           []consumer.BatchInfo // each batch profiled wrote
}

// readBatches reads the batches profiled wrote to its batch log.
func readBatches(path string) ([]consumer.BatchInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []consumer.BatchInfo
	dec := json.NewDecoder(f)
	for {
		var b consumer.BatchInfo
		if err := dec.Decode(&b); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("batch log %s: %w", path, err)
		}
		out = append(out, b)
	}
}

func pipeline(ctx context.Context, s settings, conn kafkaconn.Config, topic, prefix, group string) (pipeResult, error) {
	kafkaPid, redisPid := servicePids(ctx, s)
	k0, r0 := cpuSeconds(kafkaPid), cpuSeconds(redisPid)
	start := time.Now()
	dir, err := os.MkdirTemp("", "profilebench-")
	if err != nil {
		return pipeResult{}, err
	}
	defer os.RemoveAll(dir)
	batchFile := filepath.Join(dir, "batches.jsonl")
	p, err := startProfiled(s, topic, group, prefix, batchFile)
	if err != nil {
		return pipeResult{}, err
	}
	if err := waitCaughtUp(ctx, conn, group, topic, 30*time.Minute); err != nil {
		p.stop()
		return pipeResult{}, err
	}
	d := time.Since(start)
	k1, r1 := cpuSeconds(kafkaPid), cpuSeconds(redisPid)
	cpu, rss := p.stop()
	batches, err := readBatches(batchFile)
	if err != nil {
		logf("the pipeline's batches could not be read back: %v", err)
	}
	return pipeResult{rate: float64(s.events) / d.Seconds(), cpu: cpu, rssMiB: rss, split: map[string]float64{
		"wall": d.Seconds(), "profiled": cpu, "kafka": k1 - k0, "redis": r1 - r0}, batches: batches}, nil
}
