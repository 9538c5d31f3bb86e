package consumer

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
)

func headerList(h []kafka.Header) []string {
	out := make([]string, len(h))
	for i, x := range h {
		out[i] = x.Key + "=" + string(x.Value)
	}
	return out
}

// TestLetters: what a dead letter carries, as it came and in the smaller
// shapes written when the dead-letter topic refuses it as too large; a
// producer's profiled.* header is renamed profiled.original.*, so every
// other profiled.* header is profiled's own.
func TestLetters(t *testing.T) {
	rec := decoded{
		msg: kafka.Message{Topic: "events", Partition: 3, Offset: 42, Key: []byte("key"), Value: []byte("0123456789"),
			Headers: []kafka.Header{
				{Key: "trace", Value: []byte("t1")},
				{Key: "profiled.error.reason", Value: []byte("forged")},
				{Key: "profiled.original.x", Value: []byte("y")},
				{Key: "Profiled.case", Value: []byte("kept")},
			}},
		rej: &profile.Rejection{Reason: profile.ReasonInvalidJSON, Detail: "value is not a JSON object"},
	}
	own := []string{
		"profiled.error.reason=invalid_json", "profiled.error.detail=value is not a JSON object",
		"profiled.source.topic=events", "profiled.source.partition=3", "profiled.source.offset=42",
		"profiled.failed_at=2026-11-01T09:00:00Z",
	}
	producer := []string{"trace=t1", "profiled.original.error.reason=forged", "profiled.original.original.x=y", "Profiled.case=kept"}
	for _, tc := range []struct {
		name       string
		shape      int
		key, value string
		headers    []string
	}{
		{"as it came", letterWhole, "key", "0123456789", append(append([]string{}, producer...), own...)},
		{"without its value", letterNoValue, "key", "",
			append(append(append([]string{}, producer...), own...), "profiled.error.value_dropped=10")},
		{"without value, key and the producer's headers", letterNoKeyHeaders, "", "",
			append(append([]string{}, own...), "profiled.error.value_dropped=10",
				// key 3 + headers 5+2, 21+6, 19+1, 13+4
				"profiled.error.key_headers_dropped=74")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := letters([]decoded{rec}, []int{0}, map[int]int{0: tc.shape}, "2026-11-01T09:00:00Z")[0]
			if string(m.Key) != tc.key || string(m.Value) != tc.value {
				t.Errorf("key %q value %q, want %q %q", m.Key, m.Value, tc.key, tc.value)
			}
			if tc.value == "" && m.Value != nil {
				t.Errorf("value %q, want null", m.Value)
			}
			got := headerList(m.Headers)
			if len(got) != len(tc.headers) {
				t.Fatalf("headers\n%q\nwant\n%q", got, tc.headers)
			}
			for i := range got {
				if got[i] != tc.headers[i] {
					t.Errorf("header %d = %q, want %q", i, got[i], tc.headers[i])
				}
			}
		})
	}
	// the record itself is left as it came
	if rec.msg.Headers[1].Key != "profiled.error.reason" {
		t.Errorf("the consumed record's header was renamed in place: %q", rec.msg.Headers[1].Key)
	}
}
