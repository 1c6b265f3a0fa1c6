package socketio

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawPair returns a rawWebSocket on the server side of a real WebSocket
// connection and the gorilla client reading it.
func rawPair(t *testing.T, timeout time.Duration) (*rawWebSocket, *websocket.Conn) {
	t.Helper()
	got := make(chan *rawWebSocket, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		got <- newRawWebSocket(c, timeout)
		go func() { // the reader, which runs the ping handler
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
	}))
	t.Cleanup(srv.Close)
	cl, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	select {
	case w := <-got:
		t.Cleanup(w.close)
		return w, cl
	case <-time.After(5 * time.Second):
		t.Fatal("no server connection")
		return nil, nil
	}
}

// TestRawWebSocketFrames checks the frames writeFrames writes against an
// independent decoder (gorilla's client) at every payload-length
// boundary, in batches that fit one write and batches split over several.
func TestRawWebSocketFrames(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 70000, maxRawWrite - 20, maxRawWrite + 5}
	tests := []struct {
		name  string
		batch [][]int // frame sizes per writeFrames call
	}{
		{"one frame per call", func() [][]int {
			var b [][]int
			for _, s := range sizes {
				b = append(b, []int{s})
			}
			return b
		}()},
		{"all in one call", [][]int{sizes}},
		{"many small frames", [][]int{func() []int {
			s := make([]int, 5000)
			for i := range s {
				s[i] = 80 + i%300
			}
			return s
		}()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, cl := rawPair(t, 5*time.Second)
			var want [][]byte
			errc := make(chan error, 1)
			var batches [][][]byte
			for bi, batch := range tc.batch {
				var texts [][]byte
				for fi, n := range batch {
					p := bytes.Repeat([]byte{byte('a' + (bi+fi)%26)}, n)
					texts = append(texts, p)
					want = append(want, append([]byte{'4'}, p...))
				}
				batches = append(batches, texts)
			}
			go func() {
				for _, texts := range batches {
					if err := w.writeFrames(texts); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			_ = cl.SetReadDeadline(time.Now().Add(20 * time.Second))
			for i, wf := range want {
				mt, msg, err := cl.ReadMessage()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if mt != websocket.TextMessage || !bytes.Equal(msg, wf) {
					t.Fatalf("frame %d: type %d, %d bytes, want text of %d bytes", i, mt, len(msg), len(wf))
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("writeFrames: %v", err)
			}
		})
	}
}

// TestRawWebSocketWriteTimeout: a client that reads nothing makes a write
// fail with a timeout once the kernel's buffers are full, and the
// transport writes nothing more after that.
func TestRawWebSocketWriteTimeout(t *testing.T) {
	t.Parallel()
	w, _ := rawPair(t, 200*time.Millisecond)
	big := [][]byte{bytes.Repeat([]byte("x"), 1<<20)}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		err = w.writeFrames(big)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write to a client that reads nothing: %v, want a timeout", err)
	}
	if err := w.writeFrames([][]byte{[]byte("2")}); !errors.Is(err, errRawClosed) {
		t.Fatalf("write after a failed write: %v, want errRawClosed", err)
	}
}

// TestRawWebSocketPing: a client's WebSocket ping is answered through the
// writer, between whole frames.
func TestRawWebSocketPing(t *testing.T) {
	t.Parallel()
	w, cl := rawPair(t, 5*time.Second)
	pong := make(chan string, 1)
	cl.SetPongHandler(func(data string) error {
		pong <- data
		return nil
	})
	if err := cl.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	go func() {
		time.Sleep(100 * time.Millisecond) // the pong goes first
		_ = w.writeFrames([][]byte{[]byte("after")})
	}()
	_, msg, err := cl.ReadMessage() // runs the pong handler on the way
	if err != nil || string(msg) != "4after" {
		t.Fatalf("read %q, %v", msg, err)
	}
	select {
	case got := <-pong:
		if got != "hello" {
			t.Fatalf("pong %q, want hello", got)
		}
	default:
		t.Fatal("no pong before the next frame")
	}
}
