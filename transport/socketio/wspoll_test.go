package socketio

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"

	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// clientFrame is a frame as a client sends it: b0 (FIN, reserved bits and
// opcode) and the payload, masked when mask is set.
func clientFrame(b0 byte, payload []byte, mask bool) []byte {
	b := []byte{b0}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// TestWSFrameParser: the poll reader's parser accepts what RFC 6455
// allows a client to send and refuses the rest with the close code
// gorilla's reader uses, whatever way the bytes are split.
func TestWSFrameParser(t *testing.T) {
	t.Parallel()
	const fin = 0x80
	long := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	type want = parsedFrame
	for _, tc := range []struct {
		name   string
		limit  int
		frames [][]byte
		want   []want
		code   int // a refusal's close code, 0 when all are accepted
	}{
		{name: "text", frames: [][]byte{clientFrame(fin|opText, []byte("4hello"), true)},
			want: []want{{opText, true, "4hello"}}},
		{name: "empty binary", frames: [][]byte{clientFrame(fin|opBinary, nil, true)},
			want: []want{{opBinary, true, ""}}},
		{name: "16-bit length", frames: [][]byte{clientFrame(fin|opText, long, true)},
			want: []want{{opText, true, string(long)}}},
		{name: "64-bit length", frames: [][]byte{clientFrame(fin|opBinary, huge, true)},
			want: []want{{opBinary, true, string(huge)}}},
		{name: "fragments with a ping between", frames: [][]byte{
			clientFrame(opText, []byte("4he"), true),
			clientFrame(fin|opPing, []byte("p"), true),
			clientFrame(opContinuation, []byte("ll"), true),
			clientFrame(fin|opContinuation, []byte("o"), true),
		}, want: []want{{opText, false, "4he"}, {opPing, true, "p"}, {opContinuation, false, "ll"}, {opContinuation, true, "o"}}},
		{name: "pong and close", frames: [][]byte{clientFrame(fin|opPong, nil, true), clientFrame(fin|opClose, []byte{3, 232}, true)},
			want: []want{{opPong, true, ""}, {opClose, true, "\x03\xe8"}}},
		{name: "at the limit", limit: 6, frames: [][]byte{clientFrame(opText, []byte("4he"), true), clientFrame(fin|opContinuation, []byte("llo"), true)},
			want: []want{{opText, false, "4he"}, {opContinuation, true, "llo"}}},

		{name: "unmasked", frames: [][]byte{clientFrame(fin|opText, []byte("4hi"), false)}, code: closeProtocolError},
		{name: "reserved bit", frames: [][]byte{clientFrame(fin|0x40|opText, []byte("4hi"), true)}, code: closeProtocolError},
		{name: "unknown opcode", frames: [][]byte{clientFrame(fin|0x3, []byte("?"), true)}, code: closeProtocolError},
		{name: "control frame fragmented", frames: [][]byte{clientFrame(opPing, nil, true)}, code: closeProtocolError},
		{name: "control frame too long", frames: [][]byte{clientFrame(fin|opPing, long[:126], true)}, code: closeProtocolError},
		{name: "continuation first", frames: [][]byte{clientFrame(fin|opContinuation, []byte("x"), true)}, code: closeProtocolError},
		{name: "text inside a fragmented message", frames: [][]byte{clientFrame(opText, []byte("4a"), true), clientFrame(fin|opText, []byte("4b"), true)},
			want: []want{{opText, false, "4a"}}, code: closeProtocolError},
		{name: "one frame over the limit", limit: 5, frames: [][]byte{clientFrame(fin|opText, []byte("4hello"), true)}, code: closeMessageTooBig},
		{name: "fragments over the limit", limit: 5, frames: [][]byte{clientFrame(opText, []byte("4he"), true), clientFrame(fin|opContinuation, []byte("llo"), true)},
			want: []want{{opText, false, "4he"}}, code: closeMessageTooBig},
		{name: "length with the top bit", frames: [][]byte{{fin | opBinary, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}}, code: closeProtocolError},
		{name: "close with an application code and a reason", frames: [][]byte{clientFrame(fin|opClose, []byte("\x0f\xa0bye"), true)},
			want: []want{{opClose, true, "\x0f\xa0bye"}}},
		{name: "close without a code", frames: [][]byte{clientFrame(fin|opClose, nil, true)},
			want: []want{{opClose, true, ""}}},
		{name: "close with no-status code", frames: [][]byte{clientFrame(fin|opClose, []byte{0x03, 0xed}, true)}, code: closeProtocolError},
		{name: "close with an unassigned code", frames: [][]byte{clientFrame(fin|opClose, []byte{0x03, 0xec}, true)}, code: closeProtocolError},
		{name: "close with a code over 4999", frames: [][]byte{clientFrame(fin|opClose, []byte{0x13, 0x88}, true)}, code: closeProtocolError},
		{name: "close with a reason that is not UTF-8", frames: [][]byte{clientFrame(fin|opClose, []byte{0x03, 0xe8, 0xff}, true)}, code: closeProtocolError},
	} {
		for _, split := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/split %d", tc.name, split), func(t *testing.T) {
				stream := bytes.Join(tc.frames, nil)
				step := split
				if step == 0 {
					step = max(len(stream), 1)
				}
				got, code, left, err := feedParser(stream, step, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if code != tc.code {
					t.Fatalf("close code %d, want %d", code, tc.code)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("%d frames, want %d", len(got), len(tc.want))
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("frame %d: op %d fin %v payload %.20q, want op %d fin %v payload %.20q",
							i, got[i].op, got[i].fin, got[i].payload, tc.want[i].op, tc.want[i].fin, tc.want[i].payload)
					}
				}
				if tc.code == 0 && left != 0 {
					t.Errorf("%d bytes left over", left)
				}
			})
		}
	}
}

// TestPollReaderIdle: connections the poller reads hold no goroutine and
// no stack while idle, after their messages were handled on a deep
// stack. (The goroutine reader holds 2 KiB each: TestRawReaderStack.)
func TestPollReaderIdle(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	const n = 300
	var handled atomic.Int64
	rs := newReaderServer(t, "poll", time.Minute, func(*packet.Packet) {
		deepStack(16)
		handled.Add(1)
	})
	settle := func() (goroutines int, stack uint64) {
		time.Sleep(100 * time.Millisecond)
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.StackInuse
	}
	g0, s0 := settle()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = rs.dial(t)
	}
	sendThree(t, conns, &handled)
	g1, s1 := settle()
	// gorilla's client reads only when asked and the httptest handlers
	// have returned, so any goroutine added is the server's reader.
	perG := float64(g1-g0) / n
	perStack := (float64(s1) - float64(s0)) / n
	t.Logf("%d idle connections: %.2f goroutines and %.0f bytes of stack each", n, perG, perStack)
	if perG > 0.1 {
		t.Errorf("%.2f goroutines per idle polled connection, want none", perG)
	}
	// Stacks of goroutines that have ended stay in the runtime's stack
	// cache a while, so allow some; a reading goroutine takes 2 KiB.
	if !raceEnabled && perStack > 1024 {
		t.Errorf("%.0f bytes of stack per idle polled connection, want none", perStack)
	}
	if got := rs.closed.Load(); got != 0 {
		t.Errorf("%d transports closed, want none", got)
	}
}

// TestPollReaderFrames: over a real connection, the poll reader puts a
// fragmented message together (answering a ping between its fragments),
// reads a message larger than one read, and ends the connection with
// gorilla's close code on a protocol error (a close frame with a code no
// peer may send is one), a message over the read limit or the client's
// close frame, and when the client or the server drops the connection.
func TestPollReaderFrames(t *testing.T) {
	t.Parallel()
	const fin = 0x80
	big := "4" + strings.Repeat("z", 60<<10)
	for _, tc := range []struct {
		name  string
		send  [][]byte
		want  []string // the messages handled
		code  int      // the close code the client gets; 0: none expected
		pong  string   // a pong the client must get first
		close string   // "client" or "server" drops the connection at the end
	}{
		{name: "fragmented with a ping", send: [][]byte{
			clientFrame(opText, []byte("4he"), true),
			clientFrame(fin|opPing, []byte("ping!"), true),
			clientFrame(opContinuation, []byte("ll"), true),
			clientFrame(fin|opContinuation, []byte("o"), true),
			clientFrame(fin|opText, []byte("4next"), true),
		}, want: []string{"hello", "next"}, pong: "ping!"},
		{name: "larger than a read", send: [][]byte{clientFrame(fin|opText, []byte(big), true)}, want: []string{big[1:]}},
		{name: "unmasked", send: [][]byte{clientFrame(fin|opText, []byte("4a"), true), clientFrame(fin|opText, []byte("4b"), false)},
			want: []string{"a"}, code: closeProtocolError},
		{name: "over the read limit", send: [][]byte{clientFrame(fin|opText, bytes.Repeat([]byte("4"), readerTestLimit+1), true)},
			code: closeMessageTooBig},
		{name: "close frame", send: [][]byte{clientFrame(fin|opText, []byte("4bye"), true), clientFrame(fin|opClose, []byte{0x03, 0xe8}, true)},
			want: []string{"bye"}, code: websocket.CloseNormalClosure},
		{name: "close frame with an application code", send: [][]byte{clientFrame(fin|opClose, []byte{0x0f, 0xa0}, true)},
			code: 4000},
		{name: "close frame with a code no peer may send", send: [][]byte{clientFrame(fin|opText, []byte("4bye"), true), clientFrame(fin|opClose, []byte{0x03, 0xee}, true)},
			want: []string{"bye"}, code: closeProtocolError},
		{name: "client drops", send: [][]byte{clientFrame(fin|opText, []byte("4x"), true)}, want: []string{"x"}, close: "client"},
		{name: "server closes", send: [][]byte{clientFrame(fin|opText, []byte("4x"), true)}, want: []string{"x"}, close: "server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got []string
			rs := newReaderServer(t, "poll", time.Minute, func(p *packet.Packet) {
				mu.Lock()
				got = append(got, p.Data.(fmt.Stringer).String())
				mu.Unlock()
			})
			cl := rs.dial(t)
			pong := make(chan string, 1)
			// The pong ends the client's read below.
			errPong := errors.New("pong")
			cl.SetPongHandler(func(s string) error { pong <- s; return errPong })
			// Wait for the transport, so its reader has started.
			var built transports.Transport
			select {
			case built = <-rs.transports:
			case <-time.After(5 * time.Second):
				t.Fatal("no transport built")
			}
			for _, f := range tc.send {
				if _, err := cl.NetConn().Write(f); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			handledAll := func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(got) != len(tc.want) {
					return fmt.Errorf("%d of %d messages handled", len(got), len(tc.want))
				}
				return nil
			}
			eventstoretest.CheckFor(t, 10*time.Second, 5*time.Millisecond, handledAll)
			if tc.pong != "" || tc.code != 0 {
				_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _, err := cl.ReadMessage() // ends at the pong or the close
				if tc.code != 0 {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != tc.code {
						t.Fatalf("client read %v, want close code %d", err, tc.code)
					}
				}
				if tc.pong != "" {
					select {
					case p := <-pong:
						if p != tc.pong {
							t.Fatalf("pong %q, want %q", p, tc.pong)
						}
					default:
						t.Fatal("ping not answered")
					}
				}
			}
			switch tc.close {
			case "client":
				_ = cl.NetConn().Close()
			case "server":
				built.Close()
			}
			mu.Lock()
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("message %d: %.30q, want %.30q", i, got[i], tc.want[i])
				}
			}
			mu.Unlock()
			if tc.code != 0 || tc.close != "" {
				eventstoretest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
					if rs.closed.Load() != 1 {
						return errors.New("transport not closed")
					}
					return nil
				})
			} else if c := rs.closed.Load(); c != 0 {
				t.Errorf("transport closed")
			}
		})
	}
}

// TestPollReaderStopsAfterClose: once a handler closes the connection,
// the messages that came in the same read are not handed on.
func TestPollReaderStopsAfterClose(t *testing.T) {
	t.Parallel()
	const fin = 0x80
	var mu sync.Mutex
	var got []string
	var tr atomic.Value // transports.Transport
	rs := newReaderServer(t, "poll", time.Minute, func(p *packet.Packet) {
		msg := p.Data.(fmt.Stringer).String()
		mu.Lock()
		got = append(got, msg)
		mu.Unlock()
		if msg == "close" {
			tr.Load().(transports.Transport).Close()
		}
	})
	cl := rs.dial(t)
	select {
	case built := <-rs.transports:
		tr.Store(built)
	case <-time.After(5 * time.Second):
		t.Fatal("no transport built")
	}
	burst := bytes.Join([][]byte{
		clientFrame(fin|opText, []byte("4a"), true),
		clientFrame(fin|opText, []byte("4close"), true),
		clientFrame(fin|opText, []byte("4b"), true),
	}, nil)
	if _, err := cl.NetConn().Write(burst); err != nil {
		t.Fatal(err)
	}
	eventstoretest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if rs.closed.Load() != 1 {
			return errors.New("transport not closed")
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "a,close" {
		t.Fatalf("handled %q, want a and close only", got)
	}
}

// FuzzWSFrameParser: whatever a client sends, the parser neither panics
// nor depends on how the bytes arrive: fed at once or a few bytes at a
// time, it returns the same frames and refuses at the same place with the
// same close code.
func FuzzWSFrameParser(f *testing.F) {
	const fin = 0x80
	f.Add(clientFrame(fin|opText, []byte("4hello"), true), uint8(1), uint16(0))
	f.Add(bytes.Join([][]byte{clientFrame(opText, []byte("4he"), true), clientFrame(fin|opPing, []byte("p"), true),
		clientFrame(fin|opContinuation, []byte("llo"), true)}, nil), uint8(2), uint16(16))
	f.Add(clientFrame(fin|opBinary, bytes.Repeat([]byte("b"), 300), true), uint8(7), uint16(100))
	f.Add(clientFrame(fin|opText, []byte("4x"), false), uint8(1), uint16(0))
	f.Add([]byte{fin | opBinary, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(3), uint16(0))
	type result struct {
		frames []parsedFrame
		code   int
		left   int
	}
	parse := func(stream []byte, step int, limit int) result {
		var r result
		var err error
		if r.frames, r.code, r.left, err = feedParser(stream, step, limit); err != nil {
			panic(err)
		}
		return r
	}
	f.Fuzz(func(t *testing.T, stream []byte, step uint8, limit uint16) {
		whole := parse(stream, max(len(stream), 1), int(limit))
		pieces := parse(stream, int(step%16)+1, int(limit))
		if whole.code != pieces.code || whole.left != pieces.left || len(whole.frames) != len(pieces.frames) {
			t.Fatalf("at once: %d frames, code %d, %d left; in pieces of %d: %d frames, code %d, %d left",
				len(whole.frames), whole.code, whole.left, step%16+1, len(pieces.frames), pieces.code, pieces.left)
		}
		for i := range whole.frames {
			if whole.frames[i] != pieces.frames[i] {
				t.Fatalf("frame %d: %+v at once, %+v in pieces", i, whole.frames[i], pieces.frames[i])
			}
		}
	})
}

// parsedFrame is a frame wsFrameParser returned, its payload copied.
type parsedFrame struct {
	op      byte
	fin     bool
	payload string
}

// feedParser feeds stream (a copy: the parser unmasks in place) to a
// parser with limit in pieces of step bytes, parsing whatever is whole
// after each, as the poll reader does with its reads. It returns the
// frames, the close code of a refusal (0 if none; the frames before it are
// returned) and, without a refusal, the bytes left unparsed. An error says
// the parser broke its contract: an error that is not a *wsProtocolError,
// or a frame that used no bytes or more than there were.
func feedParser(stream []byte, step, limit int) (frames []parsedFrame, code, left int, err error) {
	stream = bytes.Clone(stream)
	p := wsFrameParser{limit: limit}
	var buf []byte
	for off := 0; off < len(stream); {
		n := min(step, len(stream)-off)
		buf = append(buf, stream[off:off+n]...)
		off += n
		for {
			f, used, err := p.next(buf)
			if errors.Is(err, errWSIncomplete) {
				break
			}
			if err != nil {
				var pe *wsProtocolError
				if !errors.As(err, &pe) {
					return frames, 0, 0, fmt.Errorf("error %v, want a *wsProtocolError", err)
				}
				return frames, pe.code, 0, nil
			}
			if used <= 0 || used > len(buf) || len(f.payload) > used {
				return frames, 0, 0, fmt.Errorf("used %d of %d bytes for a payload of %d", used, len(buf), len(f.payload))
			}
			frames = append(frames, parsedFrame{f.op, f.fin, string(f.payload)})
			buf = buf[used:]
		}
	}
	return frames, 0, len(buf), nil
}
