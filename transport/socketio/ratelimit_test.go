package socketio

import (
	"testing"
	"time"
)

func TestSocketLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	cfg := RateLimit{Rate: 10, Burst: 2, DisconnectAfter: 3}.withDefaults()
	l := &socketLimiter{cfg: cfg, now: func() time.Time { return now }, tokens: 2, at: now}
	for i := range 2 {
		if ok, _ := l.take(); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	for i := range 3 {
		if ok, drop := l.take(); ok || drop {
			t.Fatalf("refusal %d: ok=%v drop=%v, want refused without a drop", i, ok, drop)
		}
	}
	if ok, drop := l.take(); ok || !drop {
		t.Fatalf("refusal past DisconnectAfter: ok=%v drop=%v, want a drop", ok, drop)
	}
	if _, drop := l.take(); drop {
		t.Fatal("dropped twice")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.take(); !ok {
		t.Fatal("a token did not come back after 1/rate")
	}
	if d := (RateLimit{}).withDefaults(); d.Rate != DefaultEventRate || d.Burst != 2*DefaultEventRate || d.DisconnectAfter != 5*DefaultEventRate {
		t.Fatalf("defaults %+v", d)
	}
}
