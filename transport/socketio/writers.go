package socketio

import (
	"sync/atomic"
	"time"
)

// writerIdle is how long a writer goroutine waits for another socket's
// burst before it exits.
const writerIdle = time.Second

// writerPool runs sockets' writer loops (conn.writeLoop). A socket has no
// goroutine of its own while it has nothing to send (see outbox), so at
// thousands of deliveries per second a goroutine per burst was started,
// grew its stack on the way to the write system call (copystack: 7% of
// roomlogd's CPU in a fan-out profile) and exited. A pool goroutine that
// finishes a burst instead waits up to writerIdle for the next socket's,
// with its stack already grown; when none is idle a new one starts. An
// idle Hub keeps none.
type writerPool struct {
	h *Hub
	// work hands a writer loop to an idle pool goroutine (unbuffered: a
	// send succeeds only if one is waiting).
	work chan func()
	// stop ends the idle goroutines; Hub.Stop closes it.
	stop chan struct{}
	// started counts the goroutines started.
	started atomic.Uint64
}

func newWriterPool(h *Hub) *writerPool {
	return &writerPool{h: h, work: make(chan func()), stop: make(chan struct{})}
}

// run runs fn on an idle pool goroutine or a new one. It reports false if
// the Hub is stopping and fn will not run.
func (p *writerPool) run(fn func()) bool {
	select {
	case p.work <- fn:
		return true
	default:
	}
	return p.h.goBackground(func() {
		p.started.Add(1)
		p.worker(fn)
	})
}

// worker runs fn, then whatever run hands it, until it has waited
// writerIdle for work or the Hub stops. The timer is reset only when it
// fires early, not after every burst.
func (p *writerPool) worker(fn func()) {
	fn()
	last := time.Now()
	t := time.NewTimer(writerIdle)
	defer t.Stop()
	for {
		select {
		case fn := <-p.work:
			fn()
			last = time.Now()
		case now := <-t.C:
			if waited := now.Sub(last); waited < writerIdle {
				t.Reset(writerIdle - waited)
				continue
			}
			return
		case <-p.stop:
			return
		}
	}
}
