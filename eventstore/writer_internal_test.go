package eventstore

import (
	"testing"
	"time"
)

// TestHandoffMissedWaitsForOlderCommits: a commit whose hand-off was
// refused wakes the consumer only once the store's other commits in
// flight at that moment have ended (their hand-off included): before
// that the tail could not deliver its events. Commits that start later
// are not waited for.
func TestHandoffMissedWaitsForOlderCommits(t *testing.T) {
	woken := make(chan struct{}, 4)
	s := New(nil, nil, &Config{HandoffMissed: func() { woken <- struct{}{} }})
	quiet := func(what string) {
		t.Helper()
		select {
		case <-woken:
			t.Fatalf("woken %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	wake := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(5 * time.Second):
			t.Fatalf("not woken %s", what)
		}
	}

	// Alone: at once.
	own := s.beginFlight()
	s.handoffMissed(own)
	wake("when no other commit is in flight")
	s.endFlight(own)

	older := s.beginFlight()
	own = s.beginFlight()
	s.handoffMissed(own)
	s.endFlight(own)
	later := s.beginFlight()
	quiet("while an older commit is in flight")
	s.endFlight(older)
	wake("after the older commit ended")
	s.endFlight(later)
	quiet("twice")
}
