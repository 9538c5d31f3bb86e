package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/export"
	"github.com/profiled/profiled/internal/testenv"
)

// withProfiles returns a getenv for a Redis holding n profiles under "t:",
// a third of them Gold, each with bookkeeping beside it.
func withProfiles(t *testing.T, n int) (func(string) string, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	for i := range n {
		key := fmt.Sprintf("t:profile:{u-%d}", i)
		typ := []string{"Gold", "Silver", "Bronze"}[i%3]
		mr.HSet(key, "customer_id", fmt.Sprintf("u-%d", i), "customer_type", typ,
			"last_seen", "2026-11-20T10:00:00.000Z", "app_launches", "3")
		mr.HSet(key+":m", "t:customer_type", "1")
	}
	env := map[string]string{"PROFILED_REDIS_URL": "redis://" + mr.Addr() + "/0", "PROFILED_REDIS_KEY_PREFIX": "t:"}
	return func(k string) string { return env[k] }, mr
}

func TestCountPrintsTheNumber(t *testing.T) {
	getenv, _ := withProfiles(t, 30)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"count"}, "30\n"},
		{[]string{"count", "--where", "customer_type=Gold"}, "10\n"},
		{[]string{"count", "--where", "customer_type=Gold", "--where", "customer_type=Silver"}, "20\n"},
		{[]string{"count", "--where", "customer_type=Gold", "--where", "app_launches=2"}, "0\n"},
		{[]string{"count", "--active-since", "2026-11-20"}, "30\n"},
		{[]string{"count", "--active-since", "2026-11-21"}, "0\n"},
		{[]string{"count", "--acquired-since", "7d"}, "0\n"}, // no first_seen: never acquired since
	} {
		var out bytes.Buffer
		if err := run(t.Context(), tc.args, getenv, nil, &out); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if out.String() != tc.want {
			t.Errorf("%v printed %q, want %q", tc.args, out.String(), tc.want)
		}
	}
}

// Bad arguments are usage errors (exit 2) whose message names the culprit.
func TestExportBadArguments(t *testing.T) {
	getenv, _ := withProfiles(t, 1)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--format", "xlsx"}, `"xlsx"`},
		{[]string{"export"}, "--format is required"},
		{[]string{"export", "--out", filepath.Join(dir, "x.txt")}, `"txt"`},
		{[]string{"export", "--format", "csv", "--fields", "id,emial"}, `"emial"`},
		{[]string{"export", "--format", "csv", "--where", "contry=IN"}, `"contry"`},
		{[]string{"export", "--format", "csv", "--where", "country"}, "FIELD=VALUE"},
		{[]string{"export", "--format", "csv", "--active-since", "a week"}, "--active-since"},
		{[]string{"count", "--acquired-since", "7days"}, "--acquired-since"},
		{[]string{"count", "extra"}, `"extra"`},
		{[]string{"count", "--batch", "0"}, "--batch"},
		{[]string{"count", "--fields", "id"}, "-fields"},
		{[]string{"export", "--limit", "3"}, "-limit"},
	} {
		err := run(t.Context(), tc.args, getenv, nil, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want a usage error naming %s", tc.args, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused export left %s", ents[0].Name())
	}
}

func TestExportFormatFromOut(t *testing.T) {
	getenv, _ := withProfiles(t, 5)
	path := filepath.Join(t.TempDir(), "gold.csv")
	if err := run(t.Context(), []string{"export", "--out", path, "--where", "customer_type=Gold", "--fields", "id,customer_type"}, getenv, nil, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "id,customer_type" || len(lines) != 3 || !strings.HasSuffix(lines[1], ",Gold") {
		t.Fatalf("csv:\n%s", b)
	}
}

// On a terminal the bar shows the profiles done of the estimate, the rate
// and the time left; the estimate comes from a sample of the keys.
func TestProgressBarOnATerminal(t *testing.T) {
	getenv, _ := withProfiles(t, 40)
	opts, _ := redis.ParseURL(getenv("PROFILED_REDIS_URL"))
	c := redis.NewClient(opts)
	defer c.Close()
	src := &export.Source{Client: c, Prefix: "t:"}
	f, err := os.CreateTemp(t.TempDir(), "tty")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	was := terminal
	terminal = func(*os.File) bool { return true }
	defer func() { terminal = was }()
	p := newProgress(context.Background(), src, "exporting", f)
	if p.bar == nil || p.estimate < 20 || p.estimate > 80 {
		t.Fatalf("estimate %d of 40 profiles", p.estimate)
	}
	p.update(export.Stats{Scanned: export.Scanned{Keys: 20}})
	p.bar.RenderBlank()
	b, _ := os.ReadFile(f.Name())
	if !regexp.MustCompile(`exporting.*%.*20/\d+.*profiles`).Match(b) {
		t.Fatalf("bar %q", b)
	}

	terminal = func(*os.File) bool { return false }
	if newProgress(context.Background(), src, "exporting", f).bar != nil {
		t.Fatal("a bar off a terminal")
	}
}

// The binary's exit status: 0 with the summary line on standard error, 2
// for a bad filter, 1 when Redis cannot be reached; no file is left under
// the final name by a failed export.
func TestExportExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; not with -short")
	}
	bin := testenv.Build(t, "cmd/profilectl")
	getenv, mr := withProfiles(t, 12)
	dir := t.TempDir()
	runBin := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(testenv.Environ("PROFILED_"), "PROFILED_REDIS_URL="+getenv("PROFILED_REDIS_URL"), "PROFILED_REDIS_KEY_PREFIX=t:")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	out := filepath.Join(dir, "p.parquet")
	code, stderr := runBin("export", "--out", out)
	if code != 0 || !regexp.MustCompile(`^exported 12 profiles in \d+\.\d s \(\d+ profiles/s\)\n$`).MatchString(stderr) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, stderr = runBin("export", "--format", "jsonl", "--out", filepath.Join(dir, "gold.jsonl"), "--where", "customer_type=Gold")
	if code != 0 || !regexp.MustCompile(`^exported 4 profiles in .*; 12 profiles read \(\d+ profiles/s\), the rest did not match\n$`).MatchString(stderr) {
		t.Fatalf("filtered: exit %d, stderr %q", code, stderr)
	}
	if code, stderr := runBin("export", "--out", out, "--where", "colour=red"); code != 2 || !strings.Contains(stderr, `"colour"`) {
		t.Fatalf("bad filter: exit %d, stderr %q", code, stderr)
	}
	mr.Close()
	out2 := filepath.Join(dir, "q.parquet")
	if code, stderr := runBin("export", "--out", out2); code != 1 || !strings.Contains(stderr, "profilectl:") {
		t.Fatalf("Redis down: exit %d, stderr %q", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("directory holds %d entries, want only p.parquet and gold.jsonl", len(ents))
	}
}
