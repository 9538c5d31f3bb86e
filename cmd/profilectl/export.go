package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/profiled/profiled/internal/export"
)

// terminal reports whether f is a terminal: the progress bar is drawn only
// there, and Parquet is never written to one.
var terminal = func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// stringList is a flag that may be given many times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// runExport runs `export` (count false) and `count` (count true).
func runExport(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	count := name == "count"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	url := fs.String("redis-url", orDefault(getenv("PROFILED_REDIS_URL"), "redis://127.0.0.1:6379/0"), "Redis URL")
	cluster := fs.String("redis-cluster-addrs", getenv("PROFILED_REDIS_CLUSTER_ADDRS"), "Redis Cluster seed addresses, comma-separated (instead of --redis-url)")
	prefix := fs.String("prefix", getenv("PROFILED_REDIS_KEY_PREFIX"), "key prefix")
	var where stringList
	fs.Var(&where, "where", "FIELD=VALUE: keep profiles whose FIELD is VALUE (repeatable)")
	active := fs.String("active-since", "", "keep profiles whose last_seen is at or after this: 7d, 36h, 2026-11-01 or an RFC 3339 time")
	acquired := fs.String("acquired-since", "", "keep profiles whose first_seen is at or after this (as --active-since)")
	batch := fs.Int("batch", export.DefaultBatch, "profiles per read pipeline (each SCAN call looks at 4 times as many keys)")
	var format, out, fields *string
	if !count {
		format = fs.String("format", "", "parquet, csv or jsonl (default: from --out's extension)")
		out = fs.String("out", "", "file to write (default: standard output)")
		fields = fs.String("fields", "", "columns to write, comma-separated, in order (default: all)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()} // exit 2, like every bad argument
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", name, fs.Arg(0))}
	}
	now := time.Now()
	var filter export.Filter
	for _, w := range where {
		if err := filter.AddWhere(w); err != nil {
			return usageError{err.Error()}
		}
	}
	var err error
	if *active != "" {
		if filter.ActiveSince, err = export.ParseSince("active-since", *active, now); err != nil {
			return usageError{err.Error()}
		}
	}
	if *acquired != "" {
		if filter.AcquiredSince, err = export.ParseSince("acquired-since", *acquired, now); err != nil {
			return usageError{err.Error()}
		}
	}
	if *batch < 1 {
		return usageError{"--batch must be at least 1"}
	}
	opts := export.Options{Filter: filter, Now: now}
	if !count {
		opts.Format = *format
		if opts.Format == "" {
			opts.Format = strings.TrimPrefix(filepath.Ext(*out), ".")
			if opts.Format == "" {
				return usageError{"--format is required (parquet, csv or jsonl) unless --out ends in one"}
			}
		}
		if err := export.CheckFormat(opts.Format); err != nil {
			return usageError{err.Error()}
		}
		if opts.Columns, err = export.SelectColumns(*fields); err != nil {
			return usageError{err.Error()}
		}
		if *out == "" && opts.Format == export.FormatParquet && stdout == io.Writer(os.Stdout) && terminal(os.Stdout) {
			return usageError{"Parquet is binary: give --out FILE or redirect standard output"}
		}
	}

	rdb, err := newRedisClient(*url, *cluster, getenv)
	if err != nil {
		return err
	}
	defer rdb.Close()
	src := &export.Source{Client: rdb, Prefix: *prefix, Batch: *batch}

	p := newProgress(ctx, src, name, os.Stderr)
	opts.Progress = p.update
	start := time.Now()
	var st export.Stats
	switch {
	case count:
		st, err = export.Count(ctx, src, filter, p.update)
	case *out == "":
		st, err = export.Export(ctx, src, stdout, opts)
	default:
		st, err = export.ExportFile(ctx, src, *out, opts)
	}
	p.finish()
	if err != nil {
		return err
	}
	if count {
		fmt.Fprintln(stdout, st.Exported)
	}
	verb := "exported"
	if count {
		verb = "counted"
	}
	fmt.Fprintln(os.Stderr, summary(verb, st, time.Since(start)))
	return nil
}

// summary is the line printed at the end: "exported N profiles in T s
// (R profiles/s)", then, with a filter, how many were read, and the
// values written as null when there are any.
func summary(verb string, st export.Stats, d time.Duration) string {
	secs := d.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(st.Exported) / secs
	}
	s := fmt.Sprintf("%s %d profiles in %.1f s (%.0f profiles/s)", verb, st.Exported, secs, rate)
	if read := st.Scanned.Keys - st.Scanned.Skipped; read != st.Exported && secs > 0 {
		s += fmt.Sprintf("; %d profiles read (%.0f profiles/s), the rest did not match", read, float64(read)/secs)
	}
	if st.Bad > 0 {
		s += fmt.Sprintf("; %d stored values did not read as their column's type and were written as null", st.Bad)
	}
	return s
}

// newRedisClient connects to a Cluster when seed addresses are given,
// else to the URL. An unreachable server shows at the first command.
func newRedisClient(url, cluster string, getenv func(string) string) (redis.UniversalClient, error) {
	if cluster != "" {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    strings.Split(cluster, ","),
			Username: getenv("PROFILED_REDIS_USERNAME"), Password: getenv("PROFILED_REDIS_PASSWORD"),
		}), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, usageError{"--redis-url: not a valid Redis URL"} // never echo the URL: it may hold a password
	}
	return redis.NewClient(opts), nil
}

// progress draws a bar of profiles scanned out of the estimate, with the
// rate and the time left, on a terminal; elsewhere it does nothing (the
// summary line says what was done).
type progress struct {
	bar      *progressbar.ProgressBar
	estimate int64
}

func newProgress(ctx context.Context, src *export.Source, verb string, w *os.File) *progress {
	p := &progress{}
	if !terminal(w) {
		return p
	}
	est, err := src.Estimate(ctx)
	if err != nil {
		est = -1 // the scan will report the error; a spinner meanwhile
	}
	p.estimate = est
	p.bar = progressbar.NewOptions64(est,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionSetItsString("profiles"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return p
}

func (p *progress) update(st export.Stats) {
	if p.bar == nil {
		return
	}
	done := st.Scanned.Keys
	if p.estimate >= 0 && done > p.estimate {
		p.estimate = done + done/10 // the estimate is a sample: keep the bar short of full until the end
		p.bar.ChangeMax64(p.estimate)
	}
	_ = p.bar.Set64(done)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// exportHeap is the heap the export lets itself grow to before the
// collector works harder: the rows of a batch are garbage as soon as
// they are encoded, so collecting less often saves CPU (about a tenth of
// profilectl's with GOGC 400), and the soft limit keeps the peak RSS
// under the 200 MiB the export promises whatever GOGC would allow.
const (
	exportGCPercent = 400
	exportHeap      = 120 << 20
)

// tuneGC sets exportGCPercent and the exportHeap soft limit, unless
// GOGC or GOMEMLIMIT is set: the operator's choice wins. main calls it
// (not runExport, which tests call in-process); the other commands hold
// far less than exportHeap, so it changes nothing for them.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(exportGCPercent)
	debug.SetMemoryLimit(exportHeap)
}
