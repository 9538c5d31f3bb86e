package consumer

import (
	"reflect"
	"testing"
	"time"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// TestConfigBatchTime: a zero BatchTime takes the 1 ms default and a
// negative one is refused, so the collector never sees 0 (it has no
// branch for it).
func TestConfigBatchTime(t *testing.T) {
	base := Config{Conn: kafkaconn.Config{Brokers: []string{"127.0.0.1:9092"}}, Topics: []string{"events"}, Group: "g", DLQTopic: "dlq"}
	for _, tc := range []struct {
		name  string
		in    time.Duration
		want  time.Duration
		valid bool
	}{
		{"zero takes the default", 0, time.Millisecond, true},
		{"set is kept", 50 * time.Millisecond, 50 * time.Millisecond, true},
		{"negative is refused", -time.Millisecond, -time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.BatchTime = tc.in
			cfg.setDefaults()
			if cfg.BatchTime != tc.want {
				t.Errorf("BatchTime %s, want %s", cfg.BatchTime, tc.want)
			}
			if err := cfg.Validate(); (err == nil) != tc.valid {
				t.Errorf("Validate = %v, want valid %v", err, tc.valid)
			}
		})
	}
}

// TestConfigDefaults: each zero field takes its documented default and a
// field already set is kept.
func TestConfigDefaults(t *testing.T) {
	got := DefaultConfig()
	want := Config{StartOffset: StartEarliest, BatchSize: 20000, BatchTime: time.Millisecond,
		CommitInterval: 100 * time.Millisecond, DrainTimeout: 10 * time.Second,
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second, HeartbeatInterval: time.Second,
		RetryMin: 100 * time.Millisecond, RetryMax: 5 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultConfig() = %+v\nwant %+v", got, want)
	}
	set := Config{StartOffset: StartLatest, BatchSize: 7, BatchTime: 2 * time.Millisecond,
		CommitInterval: time.Second, DrainTimeout: time.Second, SessionTimeout: 6 * time.Second,
		RebalanceTimeout: time.Minute, HeartbeatInterval: 2 * time.Second,
		RetryMin: time.Millisecond, RetryMax: time.Minute}
	kept := set
	kept.setDefaults()
	if !reflect.DeepEqual(kept, set) {
		t.Errorf("setDefaults changed set fields: %+v\nwant %+v", kept, set)
	}
}
