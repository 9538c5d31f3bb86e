package kafka

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestIsTemporary(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"retriable code", kafka.NotLeaderForPartition, true},
		{"retriable code, wrapped", fmt.Errorf("write: %w", kafka.RequestTimedOut), true},
		{"not authorised", kafka.TopicAuthorizationFailed, false},
		{"too large", kafka.MessageSizeTooLarge, false},
		{"write errors, all retriable", kafka.WriteErrors{nil, kafka.LeaderNotAvailable}, true},
		{"write errors, one fatal", kafka.WriteErrors{kafka.LeaderNotAvailable, kafka.TopicAuthorizationFailed}, false},
		{"connection reset", syscall.ECONNRESET, true},
		{"EOF", io.ErrUnexpectedEOF, true},
		{"unknown", errors.New("something"), true},
	} {
		if got := IsTemporary(c.err); got != c.want {
			t.Errorf("%s: IsTemporary(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestOffsetsLagAndCaughtUp(t *testing.T) {
	for _, c := range []struct {
		name     string
		offs     map[int]PartitionOffsets
		lag      int64
		caughtUp bool
	}{
		{"no partitions", nil, 0, true},
		{"empty partition, nothing committed", map[int]PartitionOffsets{0: {Committed: -1, End: 0}}, 0, true},
		{"nothing committed", map[int]PartitionOffsets{0: {Committed: -1, End: 7}}, 7, false},
		{"behind", map[int]PartitionOffsets{0: {Committed: 5, End: 7}, 1: {Committed: 3, End: 3}}, 2, false},
		{"at the end", map[int]PartitionOffsets{0: {Committed: 7, End: 7}, 1: {Committed: 3, End: 3}}, 0, true},
	} {
		var lag int64
		for _, po := range c.offs {
			lag += po.Lag()
		}
		if lag != c.lag || CaughtUp(c.offs) != c.caughtUp {
			t.Errorf("%s: lag %d, caught up %v; want %d, %v", c.name, lag, CaughtUp(c.offs), c.lag, c.caughtUp)
		}
	}
}
