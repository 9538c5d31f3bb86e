package sink

import "time"

// SetNow replaces the sink's clock, for the dedupe-window tests.
func (s *Sink) SetNow(now func() time.Time) { s.now = now }

// SetStep installs a hook that runs after each step of a batch (1 apply,
// 2 claim, 3 fold, 4 finish); its error ends the batch there.
func (s *Sink) SetStep(f func(n int) error) { s.step = f }
