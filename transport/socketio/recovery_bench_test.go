package socketio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// BenchmarkRecovery is a connection state recovery of 1,000 or 10,000
// missed events of one room, the replay roomlog-bench's scenario (e)
// times, without the publishing and the fan-out's digestion of it: the
// events are appended and the fan-out has passed them before the clock
// starts. Each iteration reconnects a raw WebSocket client with
// {token, pid, offset} (the same offset every time: the session keeps its
// rooms) and reads until the last missed event, checking they all arrive
// in order; then it drops the transport without a DISCONNECT.
func BenchmarkRecovery(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			srv := newServer(b, newDB(b), serverOpts{})
			room := domain.Room("user-rec")
			tok := token(b, "rec")
			ws, pid, err := recoveryDial(srv.URL, map[string]string{"token": tok})
			if err != nil {
				b.Fatal(err)
			}
			// The session-offset event gives the client its first offset.
			msg, err := readUntil(ws, `42["session-offset",`)
			if err != nil {
				b.Fatal(err)
			}
			var args []string
			if err := json.Unmarshal(msg[2:], &args); err != nil || len(args) != 2 {
				b.Fatalf("session-offset %s: %v", msg, err)
			}
			offset := args[1]
			if err := ws.WriteMessage(websocket.TextMessage, []byte(`421["subscribe",{"room":"user-rec"}]`)); err != nil {
				b.Fatal(err)
			}
			if msg, err := readUntil(ws, "431["); err != nil || !bytes.Contains(msg, []byte(`"ok":true`)) {
				b.Fatalf("subscribe: %s %v", msg, err)
			}
			ws.Close() // a dropped transport: the session stays recoverable

			pad := strings.Repeat("x", 160)
			for done := 0; done < n; done += 1000 {
				reqs := make([]eventstore.AppendRequest, min(1000, n-done))
				for i := range reqs {
					reqs[i] = eventstore.AppendRequest{Type: "x-bench", Rooms: []domain.Room{room}, Producer: "bench",
						Payload: fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, done+i+1, pad)}
				}
				if _, err := srv.Store.AppendBatch(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			page, err := srv.Store.ReadRoom(context.Background(), room, int64(n-1), 1)
			if err != nil || len(page.Events) != 1 {
				b.Fatalf("last event: %v %v", page, err)
			}
			last := page.Events[0].Position
			checkFor(b, 20*time.Second, 5*time.Millisecond, func() error {
				if p := srv.fanout.Position(); p.Less(last) {
					return fmt.Errorf("fan-out at %v, the last event at %v", p, last)
				}
				return nil
			})

			auth := map[string]string{"token": tok, "pid": pid, "offset": offset}
			for b.Loop() {
				if err := recoverOnce(srv.URL, auth, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// recoveryDial opens a WebSocket Engine.IO session, connects with auth and
// returns the pid of the CONNECT ack. Event packets that come before the
// ack are not kept.
func recoveryDial(base string, auth map[string]string) (*websocket.Conn, string, error) {
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {frontend}})
	if err != nil {
		return nil, "", err
	}
	if _, err := readUntil(ws, "0{"); err != nil {
		ws.Close()
		return nil, "", err
	}
	a, _ := json.Marshal(auth)
	if err := ws.WriteMessage(websocket.TextMessage, append([]byte("40"), a...)); err != nil {
		ws.Close()
		return nil, "", err
	}
	msg, err := readUntil(ws, "40{")
	if err != nil {
		ws.Close()
		return nil, "", err
	}
	var ack struct{ Pid string }
	if err := json.Unmarshal(msg[2:], &ack); err != nil {
		ws.Close()
		return nil, "", err
	}
	return ws, ack.Pid, nil
}

// recoverOnce reconnects with auth, checks the CONNECT ack carries auth's
// pid and reads the n missed x-bench events (payload i from 1 to n, in
// order), then drops the transport.
func recoverOnce(base string, auth map[string]string, n int) error {
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {frontend}})
	if err != nil {
		return err
	}
	defer ws.Close()
	if _, err := readUntil(ws, "0{"); err != nil {
		return err
	}
	a, _ := json.Marshal(auth)
	if err := ws.WriteMessage(websocket.TextMessage, append([]byte("40"), a...)); err != nil {
		return err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, acked := 0, false
	for got < n || !acked {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d events: %w", got, err)
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40{")):
			if !bytes.Contains(msg, []byte(`"pid":"`+auth["pid"]+`"`)) {
				return fmt.Errorf("not recovered: %s", msg)
			}
			acked = true
		case bytes.HasPrefix(msg, []byte(`42["x-bench",`)):
			got++
			if want := fmt.Appendf(nil, `{"i":%d,`, got); !bytes.Contains(msg, want) {
				return fmt.Errorf("event %d: %.80s", got, msg)
			}
		case string(msg) == "2":
			if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return err
			}
		case bytes.HasPrefix(msg, []byte("44")):
			return fmt.Errorf("refused: %s", msg)
		}
	}
	return nil
}

// readUntil reads packets, answering pings, until one starts with prefix
// (rawSocket.until on a bare connection).
func readUntil(ws *websocket.Conn, prefix string) ([]byte, error) {
	return (&rawSocket{ws: ws}).until(prefix)
}
