package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/profiled/profiled/consumer"
)

// batchLogVar names a file to which every written batch is appended as a
// JSON line (consumer.BatchInfo). It is a PROFILED_TEST_* name, reserved
// for the project's own tools: the benchmark (cmd/profilebench) replays
// the pipeline's batches from it. It is not a setting of the service.
const batchLogVar = "PROFILED_TEST_BATCH_LOG"

// batchLog returns the consumer's OnBatch observer writing to path, and
// the function that closes the file; both nil when path is empty. Each
// batch is one write of one line, so a reader sees whole lines.
func batchLog(path string) (func(consumer.BatchInfo), func() error, error) {
	if strings.TrimSpace(path) == "" {
		return nil, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", batchLogVar, err)
	}
	enc := json.NewEncoder(f)
	return func(b consumer.BatchInfo) { _ = enc.Encode(b) }, f.Close, nil
}
