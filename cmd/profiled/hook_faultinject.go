//go:build faultinject

package main

import (
	"os"
	"strings"
)

// beforeCommitHook is the crash tests' fault-injection hook, compiled only
// into a test build (go build -tags faultinject): when
// PROFILED_TEST_STALL_BEFORE_COMMIT names a file, the first batch that
// reaches its commit creates the file and blocks forever, so a test can
// kill -9 the process after Redis was written and before the offsets were
// committed.
func beforeCommitHook(env map[string]string) func() {
	path := strings.TrimSpace(env["PROFILED_TEST_STALL_BEFORE_COMMIT"])
	if path == "" {
		return nil
	}
	return func() {
		_ = os.WriteFile(path, []byte("stalled before commit\n"), 0o600)
		select {}
	}
}
