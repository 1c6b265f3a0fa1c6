package socketio_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/transport/socketio"
)

// TestUpgrade covers the Hub's own upgrade of a new WebSocket session
// (upgrade.go): it opens sessions as the engine did, refuses what the
// engine refused with the same answer (before the upgrade, and after it
// when the engine's handshake refuses), reads client messages larger than
// its small read buffer and enforces the payload limit.
func TestUpgrade(t *testing.T) {
	const maxPayload = 4 << 10
	srv := newServer(t, newDB(t), serverOpts{Config: socketio.Config{MaxPayloadBytes: maxPayload}})
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket"

	// open dials a new WebSocket session and returns it after the
	// Engine.IO OPEN packet, whose fields it checks.
	open := func(t *testing.T) *rawSocket {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {frontend}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		c := &rawSocket{ws: ws}
		msg, err := c.until("0{")
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		var hello struct {
			Sid          string   `json:"sid"`
			Upgrades     []string `json:"upgrades"`
			PingInterval int64    `json:"pingInterval"`
			MaxPayload   int64    `json:"maxPayload"`
		}
		if err := json.Unmarshal(msg[1:], &hello); err != nil || hello.Sid == "" || hello.PingInterval <= 0 || hello.MaxPayload != maxPayload {
			t.Fatalf("OPEN packet %s (%v)", msg, err)
		}
		return c
	}

	// connect sends the Socket.IO CONNECT with auth and returns the
	// server's answer.
	connect := func(c *rawSocket, auth map[string]string) ([]byte, error) {
		b, _ := json.Marshal(auth)
		if err := c.ws.WriteMessage(websocket.TextMessage, append([]byte("40"), b...)); err != nil {
			return nil, err
		}
		return c.until("40{")
	}

	t.Run("LargeMessage", func(t *testing.T) {
		// A CONNECT of 3 KiB: more than the upgrader's 256-byte read
		// buffer and gorilla's default 1 KiB, under the 4 KiB limit.
		c := open(t)
		msg, err := connect(c, map[string]string{"token": token(t, "up-large"), "pad": strings.Repeat("x", 3<<10)})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		if !strings.Contains(string(msg), `"sid"`) {
			t.Fatalf("CONNECT answer %s", msg)
		}
		if err := c.call(`["subscribe",{"room":"user-up-large"}]`); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OverPayloadLimit", func(t *testing.T) {
		c := open(t)
		big := append([]byte("4"), strings.Repeat("y", maxPayload+1)...)
		if err := c.ws.WriteMessage(websocket.TextMessage, big); err != nil {
			t.Fatal(err)
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, _, err := c.ws.ReadMessage()
			if err == nil {
				continue // a ping, before the close
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("read after an oversized message: %v, want a close with %d (message too big)", err, websocket.CloseMessageTooBig)
			}
			return
		}
	})

	t.Run("ForeignOrigin", func(t *testing.T) {
		before := srv.Hub.Stats().Rejected
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"http://evil.test"}})
		if err == nil {
			ws.Close()
			t.Fatal("WebSocket from a foreign origin was upgraded")
		}
		if resp == nil {
			t.Fatalf("no HTTP answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || string(body) != "origin not allowed" {
			t.Fatalf("got %d %q, want 400 %q", resp.StatusCode, body, "origin not allowed")
		}
		if got := srv.Hub.Stats().Rejected; got != before+1 {
			t.Fatalf("Stats.Rejected %d -> %d, want one more", before, got)
		}
	})

	t.Run("OldProtocol", func(t *testing.T) {
		// Upgraded, then refused by the engine's handshake: a close frame
		// carries the reason, as the engine sends it.
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(wsURL, "EIO=4", "EIO=3", 1), http.Header{"Origin": {frontend}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "Unsupported protocol version" {
			t.Fatalf("EIO=3: got %q, %v; want a close 1000 %q", msg, err, "Unsupported protocol version")
		}
	})

	t.Run("UnknownSid", func(t *testing.T) {
		// A request with a sid is not the Hub's: the engine refuses it
		// as before.
		_, resp, err := websocket.DefaultDialer.Dial(wsURL+"&sid=AAAAAAAAAAAAAAAAAAAA", http.Header{"Origin": {frontend}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("upgrade with an unknown sid: %v, %+v", err, resp)
		}
	})
}
