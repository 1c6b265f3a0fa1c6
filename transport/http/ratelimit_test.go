package httpapi

import (
	"testing"
	"time"
)

func TestKeyBuckets(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	k := newKeyBuckets(RateLimit{Rate: 10, Burst: 3})
	k.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := k.take("a"); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := k.take("a")
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused with wait ≤ 100ms", ok, wait)
	}
	if ok, _ := k.take("b"); !ok {
		t.Fatal("another key is limited by a's bucket")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := k.take("a"); !ok {
		t.Fatal("a token did not come back after 1/rate")
	}
	off := newKeyBuckets((&RateLimit{Rate: -1}).WithDefaults())
	for range 10_000 {
		if ok, _ := off.take("a"); !ok {
			t.Fatal("a negative rate limited")
		}
	}
	if d := (*RateLimit)(nil).WithDefaults(); d.Rate != DefaultPublishRate || d.Burst != 2*DefaultPublishRate {
		t.Fatalf("defaults %+v", d)
	}
}
