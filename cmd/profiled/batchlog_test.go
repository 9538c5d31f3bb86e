package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/profiled/profiled/consumer"
)

// TestBatchLog: each batch becomes one JSON line that decodes back to the
// same BatchInfo; no path, no observer.
func TestBatchLog(t *testing.T) {
	if on, closeFn, err := batchLog(""); on != nil || err != nil || closeFn() != nil {
		t.Fatalf("empty path: observer %v, err %v", on != nil, err)
	}
	path := filepath.Join(t.TempDir(), "batches.jsonl")
	on, closeFn, err := batchLog(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []consumer.BatchInfo{
		{Ranges: []consumer.OffsetRange{{Topic: "events", Partition: 1, First: 0, Last: 9}}, Records: 10, Profiles: 4},
		{Ranges: []consumer.OffsetRange{{Topic: "events", Partition: 0, First: 3, Last: 3}}, Records: 1, Dead: 1},
	}
	for _, b := range want {
		on(b)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []consumer.BatchInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var b consumer.BatchInfo
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
}
