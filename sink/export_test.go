package sink

import "time"

// SetNow replaces the sink's clock, for the dedupe-window tests.
func (s *Sink) SetNow(now func() time.Time) { s.now = now }
