package consumer

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// Backoff is the project's one retry policy: capped exponential back-off
// with full jitter. Attempt n (from 0) waits a uniformly random time in
// [0, min(Max, Min·2^n)]: spread over the whole range, so instances that
// failed together (a Redis restart) do not come back together. Every retry
// loop of the consumer uses it, and so do profiled's start-up waits.
type Backoff struct {
	Min, Max time.Duration
	rand     func(n int64) int64 // uniform in [0, n); rand.Int64N when nil
}

// ceiling is the upper bound of attempt's delay: Min·2^attempt, capped.
func (b Backoff) ceiling(attempt int) time.Duration {
	d := b.Min << min(attempt, 30)
	if d > b.Max || d <= 0 || d>>min(attempt, 30) != b.Min {
		d = b.Max
	}
	return d
}

// Delay returns the wait before retrying after attempt (from 0) failed.
func (b Backoff) Delay(attempt int) time.Duration {
	r := b.rand
	if r == nil {
		r = rand.Int64N
	}
	return time.Duration(r(int64(b.ceiling(attempt)) + 1))
}

// Wait sleeps attempt's delay; it returns false when ctx ended first (or
// had ended).
func (b Backoff) Wait(ctx context.Context, attempt int) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(b.Delay(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// logEvery is how often a retry loop that keeps failing logs: its first
// failure and then every logEvery-th, so an outage of hours does not flood
// the log and its start and progress are still visible.
const logEvery = 20

// retrier is one retry loop: it counts the attempts, throttles the log,
// and sleeps the policy's delay. Every retry loop of the consumer (fetch,
// store write, dead letters, commit) uses one.
type retrier struct {
	policy  Backoff
	log     zerolog.Logger
	what    string // what failed, for the log: "store write"
	touch   func() // a sign of life while retrying; may be nil
	attempt int    // failed attempts so far
}

func newRetrier(policy Backoff, log zerolog.Logger, what string, touch func()) *retrier {
	return &retrier{policy: policy, log: log, what: what, touch: touch}
}

// wait records that an attempt failed with err, logs it when due, and
// sleeps before the next attempt. It returns false when ctx ended first.
func (r *retrier) wait(ctx context.Context, err error) bool {
	if r.attempt%logEvery == 0 {
		r.log.Warn().Err(err).Int("attempt", r.attempt+1).Msg(r.what + " failed; retrying with back-off")
	}
	if r.touch != nil {
		r.touch()
	}
	attempt := r.attempt
	r.attempt++
	return r.policy.Wait(ctx, attempt)
}

// reset starts counting again after a success.
func (r *retrier) reset() { r.attempt = 0 }
