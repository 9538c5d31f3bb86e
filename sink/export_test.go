package sink

import "time"

// SetNow replaces the sink's clock, for the dedupe-window tests.
func (s *Sink) SetNow(now func() time.Time) { s.now = now }

// SetStep installs a hook that runs after each step of a batch (1 apply,
// 2 claim, 3 fold, 4 finish); its error ends the batch there.
func (s *Sink) SetStep(f func(n int) error) { s.step = f }

// SetOneNode turns the one-step link of an anonymous id with no history on
// or off (on by default unless the client is a Cluster client), so that
// tests on one server can run the four-step protocol as well.
func (s *Sink) SetOneNode(on bool) { s.oneNode = on }
