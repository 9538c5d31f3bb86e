package main

import (
	"bytes"
	"context"
	"runtime"
	"testing"
)

// TestVersion: --version alone prints the build's version and revision
// and needs no settings.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{arg}, nil, &out, &errOut)
		want := "profiled dev (revision unknown, " + runtime.Version() + ")\n"
		if err != nil || out.String() != want {
			t.Errorf("%s: %q, %v; want %q", arg, out.String(), err, want)
		}
	}
}
