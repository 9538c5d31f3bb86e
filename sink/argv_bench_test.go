package sink

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

// BenchmarkArgv measures the script arguments of a typical update: a user
// with four fields and three launches (about the pipeline's average share
// of a batch).
func BenchmarkArgv(b *testing.B) {
	s := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), DefaultConfig(), nil)
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixMilli()
	u := &profile.Update{ProfileID: "user-42", Fields: map[string]profile.Stamped{
		"email": {Value: "a@example.com", Time: t0}, "city": {Value: "Pune", Time: t0},
		"timezone": {Value: "Asia/Kolkata", Time: t0}, "customer_type": {Value: "paid", Time: t0},
	}}
	u.First = profile.Seen{Time: t0, Channel: "app"}
	u.Last = profile.Seen{Time: t0 + 1000, Channel: "app"}
	for i := range 3 {
		u.Counts = append(u.Counts, profile.Count{Kind: profile.KindAppLaunch, Source: "t/0", Offset: int64(100 + i), MessageID: "m-" + strconv.Itoa(i)})
	}
	now := time.UnixMilli(t0 + 5000)
	buf := new(argBuf)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.argv(buf, []string{"k", "k:m", "k:d", "k:links"}, u, 'u', "", nil, nil, now)
		if i%runChunk == runChunk-1 {
			buf.reset() // as runAll does after each pipeline
		}
	}
}
