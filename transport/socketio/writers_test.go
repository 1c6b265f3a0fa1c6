package socketio

import (
	"sync"
	"testing"
	"time"
)

// TestWriterPool: a burst that follows another runs on the goroutine the
// first one ran on; bursts that overlap get goroutines of their own; Stop
// ends the idle ones.
func TestWriterPool(t *testing.T) {
	t.Parallel()
	h := &Hub{}
	p := newWriterPool(h)
	done := make(chan struct{}, 10)
	job := func() { done <- struct{}{} }
	for range 20 {
		if !p.run(job) {
			t.Fatal("run refused")
		}
		<-done
		time.Sleep(5 * time.Millisecond)
	}
	// Without the pool each burst would start a goroutine. (A burst
	// handed over while the last goroutine is still between its job and
	// its wait starts a second one, hence 2.)
	if n := p.started.Load(); n > 2 {
		t.Errorf("20 sequential bursts started %d goroutines, want 1 (or 2)", n)
	}
	before := int(p.started.Load())

	// Overlapping bursts: each blocks until all have started.
	var wg sync.WaitGroup
	wg.Add(3)
	for range 3 {
		p.run(func() { wg.Done(); wg.Wait() })
	}
	wg.Wait()
	if n := int(p.started.Load()) - before; n < 3-before {
		t.Errorf("3 overlapping bursts with %d goroutine(s) idle started %d more", before, n)
	}

	h.bgMu.Lock()
	h.bgClosed = true
	h.bgMu.Unlock()
	close(p.stop)
	stopped := make(chan struct{})
	go func() { h.bg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("idle writer goroutines did not end at stop")
	}
	if p.run(job) {
		t.Error("run accepted work after stop")
	}
}
