package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/consumer"
)

// TestPipelineBatches: the pipeline's batches are rebuilt record for
// record from the ranges profiled reported, and refused unless they hold
// every record of the topic once.
func TestPipelineBatches(t *testing.T) {
	parts := make([][]kafka.Message, 2)
	for p := range parts {
		for off := int64(0); off < 5; off++ {
			parts[p] = append(parts[p], kafka.Message{Topic: "t", Partition: p, Offset: off})
		}
	}
	r := func(p int, first, last int64) consumer.OffsetRange {
		return consumer.OffsetRange{Topic: "t", Partition: p, First: first, Last: last}
	}
	batch := func(rs ...consumer.OffsetRange) consumer.BatchInfo { return consumer.BatchInfo{Ranges: rs} }
	for _, tc := range []struct {
		name    string
		batches []consumer.BatchInfo
		ok      bool
		sizes   []int
	}{
		{"every record once", []consumer.BatchInfo{batch(r(1, 0, 2), r(0, 0, 4)), batch(r(1, 3, 4))}, true, []int{8, 2}},
		{"a record missing", []consumer.BatchInfo{batch(r(0, 0, 4), r(1, 0, 3))}, false, nil},
		{"a gap", []consumer.BatchInfo{batch(r(0, 0, 1), r(1, 0, 4)), batch(r(0, 3, 4))}, false, nil},
		{"a record twice", []consumer.BatchInfo{batch(r(0, 0, 4), r(1, 0, 4)), batch(r(0, 4, 4))}, false, nil},
		{"another topic", []consumer.BatchInfo{batch(consumer.OffsetRange{Topic: "x", Partition: 0, First: 0, Last: 4})}, false, nil},
		{"a partition the topic lacks", []consumer.BatchInfo{batch(r(2, 0, 0))}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups, ok := pipelineBatches(parts, "t", tc.batches)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			for i, g := range groups {
				if len(g) != tc.sizes[i] {
					t.Errorf("batch %d: %d records, want %d", i, len(g), tc.sizes[i])
				}
			}
		})
	}
}

// TestReadBatches reads a batch log as profiled writes it: one JSON
// object per line.
func TestReadBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.jsonl")
	lines := `{"ranges":[{"topic":"t","partition":0,"first":0,"last":9}],"records":10,"profiles":3,"dead":0}
{"ranges":[{"topic":"t","partition":1,"first":0,"last":0}],"records":1,"profiles":0,"dead":1}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readBatches(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Ranges[0].Last != 9 || got[1].Dead != 1 {
		t.Fatalf("read %+v", got)
	}
}

// TestLogWritten: the batch log counts as written only the records of
// whole lines, read as they are appended.
func TestLogWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batches.jsonl")
	written := logWritten(10, path)
	if written() {
		t.Fatal("no log yet, yet written")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	appendLine := func(s string) {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(`{"records":4}` + "\n" + `{"records":5}` + "\n")
	if written() {
		t.Fatal("9 records of 10, yet written")
	}
	appendLine(`{"reco`) // a line half written
	if written() {
		t.Fatal("a half line counted")
	}
	appendLine(`rds":1}` + "\n")
	if !written() {
		t.Fatal("10 records of 10, yet not written")
	}
}

// TestLogWrittenSums: the logs of several instances count together.
func TestLogWrittenSums(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	written := logWritten(10, a, b)
	if err := os.WriteFile(a, []byte(`{"records":6}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if written() {
		t.Fatal("6 records of 10, yet written")
	}
	if err := os.WriteFile(b, []byte(`{"records":4}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !written() {
		t.Fatal("6 + 4 records of 10, yet not written")
	}
}
