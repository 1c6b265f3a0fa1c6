package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// sioConn is a minimal Socket.IO v4 client over a raw WebSocket, framed as
// the official client frames it on the wire: engine.io v4 open packet
// "0{...}", namespace CONNECT "40{auth}", events "42[...]", acks
// "43<id>[...]", and the server's ping "2" answered with pong "3". It does
// only what a load generator needs: connect, subscribe with an ack, then
// count the events of one name.
type sioConn struct {
	ws *websocket.Conn
}

var sioDialer = &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}

// openSIO dials the Socket.IO endpoint of base (http://host:port) over a
// WebSocket with Origin benchOrigin, reads the engine.io open packet and
// sends the main namespace's CONNECT with auth (none if nil). The read
// deadline it sets, wait from now, still holds when it returns, for the
// caller's wait for the CONNECT ack.
func openSIO(ctx context.Context, base string, auth map[string]string, wait time.Duration) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	hdr := http.Header{}
	hdr.Set("Origin", benchOrigin)
	ws, _, err := sioDialer.DialContext(ctx, u, hdr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) == 0 || msg[0] != '0' {
		ws.Close()
		return nil, fmt.Errorf("engine.io open: %q %v", msg, err)
	}
	connect := []byte("40")
	if auth != nil {
		a, _ := json.Marshal(auth)
		connect = append(connect, a...)
	}
	if err := ws.WriteMessage(websocket.TextMessage, connect); err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

// dialSIO opens a Socket.IO connection to base (http://host:port) and
// connects the main namespace with auth {token} (none if token is "").
func dialSIO(ctx context.Context, base, token string) (*sioConn, error) {
	var auth map[string]string
	if token != "" {
		auth = map[string]string{"token": token}
	}
	ws, err := openSIO(ctx, base, auth, 15*time.Second)
	if err != nil {
		return nil, err
	}
	c := &sioConn{ws: ws}
	for {
		msg, err := c.next()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("connect: %w", err)
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40")):
			return c, nil
		case bytes.HasPrefix(msg, []byte("44")):
			ws.Close()
			return nil, fmt.Errorf("connect_error: %s", msg[2:])
		}
	}
}

// next reads the next packet, answering pings on the way.
func (c *sioConn) next() ([]byte, error) {
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if len(msg) == 1 && msg[0] == '2' {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return nil, err
			}
			continue
		}
		return msg, nil
	}
}

// subscribePacket is the event subscribe {room} with ack id 1.
func subscribePacket(room string) []byte {
	b, _ := json.Marshal([]any{"subscribe", map[string]string{"room": room}})
	return append([]byte("421"), b...)
}

// subscribeAcked checks that ack, the answer to subscribePacket(room),
// says {ok: true}.
func subscribeAcked(room string, ack []byte) error {
	if !bytes.Contains(ack, []byte(`"ok":true`)) {
		return fmt.Errorf("subscribe %s refused: %s", room, ack)
	}
	return nil
}

// subscribe emits subscribe {room} with ack id 1 and waits for {ok: true}.
func (c *sioConn) subscribe(room string) error {
	if err := c.ws.WriteMessage(websocket.TextMessage, subscribePacket(room)); err != nil {
		return err
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		msg, err := c.next()
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", room, err)
		}
		if bytes.HasPrefix(msg, []byte("431[")) {
			return subscribeAcked(room, msg)
		}
	}
}

// readEvents calls onEvent with the scheduled time (payload field "t",
// Unix nanoseconds) of every event named name, until the connection ends.
// It is the connection's only reader and, after subscribe, only writer.
func (c *sioConn) readEvents(name string, onEvent func(sched int64)) error {
	prefix := []byte(`42["` + name + `",`)
	_ = c.ws.SetReadDeadline(time.Time{})
	for {
		msg, err := c.next()
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(msg, prefix) {
			continue
		}
		if t, ok := intField(msg[len(prefix):], `"t":`); ok {
			onEvent(t)
		}
	}
}

// intField parses the integer after the first occurrence of key (e.g.
// `"seq":`) in b, skipping spaces.
func intField(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = bytes.TrimLeft(b[i+len(key):], " ")
	j := 0
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || j == 0 && b[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return v, err == nil
}

func (c *sioConn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}
