package main

// The pipeline measure: profiled from the first offset to zero lag.

import (
	"bytes"
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

// waitCaughtUp waits until group has committed every record of topic.
// Asking the broker is not free, and the benchmark charges the broker's
// CPU to the pipeline: a fresh client each time cost it about 20 ms of
// CPU (its version, metadata and coordinator requests), 2-3 CPU-s of the
// 15 s of a pipeline run when asked every 50 ms. So it asks over one
// client, and, when written is not nil, only once written reports every
// record written to Redis (profiled's batch log), which costs the broker
// nothing.
func waitCaughtUp(ctx context.Context, conn kafkaconn.Config, group, topic string, limit time.Duration, written func() bool) error {
	w, err := conn.NewOffsetWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	deadline := time.Now().Add(limit)
	var asked time.Time
	for time.Now().Before(deadline) && ctx.Err() == nil {
		// the broker is asked once a second all the same, in case the
		// log falls short of what was committed
		if written != nil && !written() && time.Since(asked) < time.Second {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		asked = time.Now()
		offs, err := w.GroupOffsets(ctx, group, topic)
		if err == nil && len(offs) > 0 && kafkaconn.CaughtUp(offs) {
			committed := true
			for _, po := range offs {
				committed = committed && po.Committed >= 0
			}
			if committed {
				return nil
			}
		}
		if written != nil {
			time.Sleep(20 * time.Millisecond) // the commit follows within its interval
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("group %s not caught up within %s", group, limit)
}

// logWritten returns a func that reports whether the batch logs at paths
// (one per profiled instance) show n records written between them; it
// reads only what was appended to each since it last looked (the writer
// appends whole lines). A record written twice (redelivered after a
// rebalance) counts twice, so the sum may run ahead of the truth: it only
// says when to start asking the broker, which decides.
func logWritten(n int, paths ...string) func() bool {
	offs := make([]int64, len(paths))
	total := 0
	return func() bool {
		for i, path := range paths {
			total += readAppended(path, &offs[i])
		}
		return total >= n
	}
}

// readAppended returns the records of the whole lines appended to the
// batch log at path since *off, and moves *off past them.
func readAppended(path string, off *int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, *off, 1<<40))
	if err != nil {
		return 0
	}
	records := 0
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return records
		}
		var bi consumer.BatchInfo
		if json.Unmarshal(b[:i], &bi) == nil {
			records += bi.Records
		}
		*off += int64(i + 1)
		b = b[i+1:]
	}
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
	if err := waitCaughtUp(ctx, conn, group, topic, 30*time.Minute, logWritten(s.events, batchFile)); err != nil {
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
