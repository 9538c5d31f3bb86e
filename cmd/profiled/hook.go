//go:build !faultinject

package main

// beforeCommitHook is the fault-injection hook of a test build (see
// hook_faultinject.go); a production build has none and reads no test
// variable.
func beforeCommitHook(map[string]string) func() { return nil }
