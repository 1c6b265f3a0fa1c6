package main

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestSearchRates(t *testing.T) {
	t.Parallel()
	o := searchOptions{Start: 100, Max: 20000, Factor: 2, Bisect: 3}
	tests := []struct {
		name      string
		limit     int // rates up to limit pass
		tried     []int
		pass, bad int
		capped    bool
	}{
		{"BisectsBetweenPassAndFail", 1000, []int{100, 200, 400, 800, 1600, 1200, 1000, 1100}, 1000, 1100, false},
		{"FirstStepFails", 50, []int{100}, 0, 100, false},
		{"StopsAtTheCap", 1 << 30, []int{100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000}, 20000, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tried []int
			pass, bad, capped := searchRates(context.Background(), o, func(rate int) bool {
				tried = append(tried, rate)
				return rate <= tt.limit
			})
			if pass != tt.pass || bad != tt.bad || capped != tt.capped || !slices.Equal(tried, tt.tried) {
				t.Fatalf("got pass %d fail %d capped %v tried %v; want %d %d %v %v", pass, bad, capped, tried, tt.pass, tt.bad, tt.capped, tt.tried)
			}
		})
	}
}

func TestSearchRatesStopsBisectingWithin2Percent(t *testing.T) {
	t.Parallel()
	o := searchOptions{Start: 1000, Max: 2000, Factor: 1.01, Bisect: 5}
	var tried []int
	pass, bad, _ := searchRates(context.Background(), o, func(rate int) bool {
		tried = append(tried, rate)
		return rate < 1015
	})
	// 1021 - 1010 is within 2% of 1010: no bisection.
	if pass != 1010 || bad != 1021 || !slices.Equal(tried, []int{1000, 1010, 1021}) {
		t.Fatalf("got pass %d fail %d tried %v", pass, bad, tried)
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	ok := func() fanoutResult {
		r := fanoutResult{deliver: &hist{}, ack: &hist{}, expected: 100, received: 100}
		for range 100 {
			r.deliver.Record(5 * time.Millisecond)
		}
		return r
	}
	slow := ok()
	for range 5 {
		slow.deliver.Record(time.Second)
	}
	lost, dup, pubErr := ok(), ok(), ok()
	lost.received, dup.received, pubErr.pubErrs = 99, 101, 1
	for name, tt := range map[string]struct {
		r    fanoutResult
		pass bool
	}{"Pass": {ok(), true}, "SlowTail": {slow, false}, "Lost": {lost, false}, "Duplicates": {dup, false}, "PublishError": {pubErr, false}} {
		if pass, why := judge(tt.r, nil, 100*time.Millisecond); pass != tt.pass {
			t.Errorf("%s: pass %v (%s), want %v", name, pass, why, tt.pass)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	if got := median([]time.Duration{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even: %v", got)
	}
	if got := median([]int(nil)); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestLastStringArg(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		msg, want string
		ok        bool
	}{
		{`42["x-bench",{"i":1},{"seq":2},"123:456"]`, "123:456", true},
		{`42["session-offset","9:10"]`, "9:10", true},
		{`42["x-bench",{"i":1,"pad":"x"}]`, "", false},
		{`42["session-offset"]`, "", false},
		{`42["x",{"a":"b"},"q\"uote"]`, `q"uote`, true},
	} {
		got, ok := lastStringArg([]byte(tt.msg))
		if got != tt.want || ok != tt.ok {
			t.Errorf("lastStringArg(%s) = %q, %v; want %q, %v", tt.msg, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIntField(t *testing.T) {
	t.Parallel()
	msg := []byte(`42["x-bench",{"i": 42,"pad":"x"},{"room":"user-a","seq":-7,"id":"u"},"1:2"]`)
	if v, ok := intField(msg, `"i":`); !ok || v != 42 {
		t.Errorf("i: %d %v", v, ok)
	}
	if v, ok := intField(msg, `"seq":`); !ok || v != -7 {
		t.Errorf("seq: %d %v", v, ok)
	}
	if _, ok := intField(msg, `"t":`); ok {
		t.Error("t found")
	}
}
