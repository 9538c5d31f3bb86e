//go:build !faultinject

package main

import "testing"

// The production build has no fault-injection hook: the test variable the
// crash tests use is not read.
func TestProductionBuildIgnoresTheStallHook(t *testing.T) {
	if h := beforeCommitHook(map[string]string{"PROFILED_TEST_STALL_BEFORE_COMMIT": "/tmp/stalled"}); h != nil {
		t.Fatal("a production build installed the stall-before-commit hook")
	}
}
