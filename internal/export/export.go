package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Options say what Export writes.
type Options struct {
	// Format is FormatParquet, FormatCSV or FormatJSONL.
	Format string
	// Columns are the columns to write, in order; every column when nil.
	Columns []Column
	// Filter selects the profiles.
	Filter Filter
	// Now is the instant JSON Lines computes ages at; time.Now when zero.
	Now time.Time
	// Progress, when set, is called after each batch, from the goroutine
	// that called Export.
	Progress func(Stats)
}

// Stats count what an export did.
type Stats struct {
	// Exported are the profiles written (those that matched the filter).
	Exported int64
	// Scanned is what the scan has seen: profile keys, and those skipped.
	Scanned Scanned
	// Bad are stored values that did not read as their column's type and
	// were written as null (Parquet only; profiled never writes them).
	Bad int64
}

// Export writes the profiles of src that match opts.Filter to w. Reading
// Redis and encoding overlap: Source.Each's goroutines scan and read while
// the caller's encodes, with a few batches in between, so memory does not
// grow with the number of profiles.
func Export(ctx context.Context, src *Source, w io.Writer, opts Options) (Stats, error) {
	cols := opts.Columns
	if cols == nil {
		cols = Columns
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	enc, err := newEncoder(opts.Format, w, cols, now)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	err = each(ctx, src, opts.Filter, func(ps []Profile, seen Scanned) error {
		bad, err := enc.write(ps)
		if err != nil {
			return fmt.Errorf("writing %s: %w", opts.Format, err)
		}
		st.Exported += int64(len(ps))
		st.Bad += int64(bad)
		st.Scanned = seen
		if opts.Progress != nil {
			opts.Progress(st)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := enc.close(); err != nil {
		return st, fmt.Errorf("writing %s: %w", opts.Format, err)
	}
	return st, nil
}

// Count counts the profiles of src that match filter, reading them as
// Export does.
func Count(ctx context.Context, src *Source, filter Filter, progress func(Stats)) (Stats, error) {
	var st Stats
	err := each(ctx, src, filter, func(ps []Profile, seen Scanned) error {
		st.Exported += int64(len(ps))
		st.Scanned = seen
		if progress != nil {
			progress(st)
		}
		return nil
	})
	return st, err
}

type page struct {
	ps   []Profile
	seen Scanned
}

// each runs src.Each in a goroutine of its own and hands the matching
// profiles of each page to fn in this one.
func each(ctx context.Context, src *Source, filter Filter, fn func([]Profile, Scanned) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 2)
	done := make(chan error, 1)
	go func() {
		defer close(pages)
		done <- src.Each(ctx, func(ps []Profile, seen Scanned) error {
			kept := ps
			if !filter.empty() {
				kept = ps[:0]
				for _, p := range ps {
					if filter.Match(p) {
						kept = append(kept, p)
					}
				}
			}
			select {
			case pages <- page{kept, seen}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var ferr error
	for pg := range pages {
		if ferr == nil {
			if ferr = fn(pg.ps, pg.seen); ferr != nil {
				cancel() // the reader stops at its next page
			}
		}
	}
	if err := <-done; ferr == nil {
		ferr = err
	}
	return ferr
}

// ExportFile is Export to the file at path. The file appears under its
// name only when the export is complete: it is written to a temporary
// file in the same directory, synced, and renamed at the end; on any error
// (or when ctx ends) the temporary file is removed. The file is readable
// by its owner only (0600): it holds personal data.
func ExportFile(ctx context.Context, src *Source, path string, opts Options) (st Stats, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.partial")
	if err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	st, err = Export(ctx, src, f, opts)
	if err != nil {
		return st, err
	}
	if err = f.Sync(); err != nil {
		return st, err
	}
	if err = f.Close(); err != nil {
		return st, err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return st, err
	}
	return st, nil
}

// CheckFormat returns an error naming format unless Export writes it.
func CheckFormat(format string) error {
	switch format {
	case FormatParquet, FormatCSV, FormatJSONL:
		return nil
	}
	return fmt.Errorf("--format %q: want parquet, csv or jsonl", format)
}
