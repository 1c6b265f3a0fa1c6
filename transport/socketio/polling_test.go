package socketio

import (
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// fakePolling is the part of a transport that pollingGuard uses: a poll is
// pending while it is writable, and Send answers it. Any other method
// panics (the embedded interface is nil).
type fakePolling struct {
	transports.Polling

	writable  bool
	discarded bool
	sent      [][]*packet.Packet
	ready     []types.EventListener
	onClose   []types.EventListener
}

func (f *fakePolling) On(ev types.EventName, ls ...types.EventListener) error {
	if ev == "ready" {
		f.ready = append(f.ready, ls...)
	}
	return nil
}

func (f *fakePolling) Once(ev types.EventName, ls ...types.EventListener) error {
	if ev == "close" {
		f.onClose = append(f.onClose, ls...)
	}
	return nil
}

func (f *fakePolling) Writable() bool { return f.writable }
func (f *fakePolling) Discard()       { f.discarded = true }

func (f *fakePolling) Send(packets []*packet.Packet) {
	f.writable = false
	f.sent = append(f.sent, packets)
}

// poll delivers a poll request: the transport becomes writable and emits
// "ready", as the library's onPollRequest does.
func (f *fakePolling) poll() {
	f.writable = true
	for _, l := range f.ready {
		l()
	}
}

func (f *fakePolling) close() {
	for _, l := range f.onClose {
		l()
	}
}

// batches renders what f sent, one string per response.
func (f *fakePolling) batches() []string {
	var out []string
	for _, b := range f.sent {
		var parts []string
		for _, p := range b {
			if p.Type == packet.NOOP {
				parts = append(parts, "noop")
			} else {
				parts = append(parts, msgText(p))
			}
		}
		out = append(out, strings.Join(parts, "+"))
	}
	return out
}

func msg(s string) []*packet.Packet {
	return []*packet.Packet{{Type: packet.MESSAGE, Data: strings.NewReader(s)}}
}

func msgText(p *packet.Packet) string {
	var b strings.Builder
	if r, ok := p.Data.(*strings.Reader); ok {
		_, _ = r.Seek(0, 0)
		_, _ = r.WriteTo(&b)
	}
	return b.String()
}

var noop = []*packet.Packet{{Type: packet.NOOP}}

func TestPollingGuard(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*pollingGuard, *fakePolling) {
		t.Helper()
		f := &fakePolling{}
		return newPollingGuard(f), f
	}
	expect := func(t *testing.T, f *fakePolling, want ...string) {
		t.Helper()
		if got := f.batches(); strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Errorf("sent %q, want %q", got, want)
		}
	}

	t.Run("FlushThatLostThePollDoesNotWait", func(t *testing.T) {
		t.Parallel()
		g, f := setup(t)
		// A poll arrives; between the socket flush's writable check and
		// its Send, the upgrade timer's NOOP answers the poll. The
		// flush runs on the poll request's own goroutine, whose response
		// (the NOOP) only leaves when it returns: its Send must not wait
		// for the next poll.
		f.poll()
		g.Send(noop)
		done := make(chan struct{})
		go func() {
			g.Send(msg("a"))
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Send waits for the next poll, on the goroutine that must answer this one")
		}
		g.Send(msg("b"))
		expect(t, f, "noop")
		// Each later poll takes the oldest batch, one response each.
		f.poll()
		expect(t, f, "noop", "a")
		f.poll()
		expect(t, f, "noop", "a", "b")
		f.poll() // nothing waits: the poll stays pending for the socket's flush
		if !f.writable {
			t.Error("an empty queue answered a poll")
		}
		g.Send(msg("c"))
		expect(t, f, "noop", "a", "b", "c")
	})

	t.Run("QueuedDataGoesBeforeNewer", func(t *testing.T) {
		t.Parallel()
		g, f := setup(t)
		g.Send(msg("a")) // no poll: queued
		// A poll arrives and another goroutine's flush wins it before
		// the guard's "ready" listener runs: it still gets the oldest.
		f.writable = true
		g.Send(msg("b"))
		expect(t, f, "a")
		f.poll()
		expect(t, f, "a", "b")
	})

	t.Run("NoopWhileQueuedTakesData", func(t *testing.T) {
		t.Parallel()
		g, f := setup(t)
		g.Send(msg("a"))
		f.writable = true // a poll, not yet announced by "ready"
		g.Send(noop)
		expect(t, f, "a")
		g.Send(noop) // poll taken: dropped, never a second send on it
		expect(t, f, "a")
	})

	t.Run("UpgradeTakesTheQueueFirst", func(t *testing.T) {
		t.Parallel()
		g, f := setup(t)
		ws := &fakePolling{writable: true}
		g.Send(msg("a"))
		g.Send(msg("b"))
		g.upgrading(ws)
		// The client's UPGRADE packet: the engine discards the polling
		// transport, then switches to ws and flushes its newer buffer.
		g.Discard()
		if !f.discarded {
			t.Error("the polling transport was not discarded")
		}
		expect(t, ws, "a", "b")
		g.Send(msg("c")) // a flush that still saw the old transport
		g.upgraded(ws)
		expect(t, ws, "a", "b", "c")
		expect(t, f)
	})

	t.Run("FailedUpgradeKeepsTheQueue", func(t *testing.T) {
		t.Parallel()
		g, f := setup(t)
		ws := &fakePolling{writable: true}
		g.upgrading(ws)
		ws.close() // the probe failed; the client keeps polling
		g.Send(msg("a"))
		f.poll()
		expect(t, f, "a")
		expect(t, ws)
	})
}
