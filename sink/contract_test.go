package sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/storetest"
	"github.com/profiled/profiled/sink"
)

// TestSinkPassesTheStoreContract runs the suite every consumer Store must
// pass (the consumer's own tests run it against their fake) against the
// Redis sink: miniredis under -short, the real Redis otherwise.
func TestSinkPassesTheStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (storetest.Store, storetest.Read) {
		c, prefix, _ := redisForTest(t)
		s := sink.New(c, sink.Config{KeyPrefix: prefix, DedupeWindow: time.Hour}, nil)
		return s, func(ctx context.Context, id string) (map[string]string, error) {
			return c.HGetAll(ctx, sink.Key(prefix, id)).Result()
		}
	})
}
