package consumer

import "testing"

// TestDLQMaxMessageBytes: the dead-letter topic profiled creates takes the
// largest limit of the input topics plus 64 KiB for the headers.
func TestDLQMaxMessageBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs map[string]int
		want   int
	}{
		{"one topic at the broker default", map[string]int{"events": 1048588}, 1048588 + 65536},
		{"the largest input decides", map[string]int{"a": 1048588, "b": 8 << 20, "c": 1000}, 8<<20 + 65536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dlqMaxMessageBytes(tc.inputs); got != tc.want {
				t.Errorf("dlqMaxMessageBytes = %d, want %d", got, tc.want)
			}
		})
	}
}
