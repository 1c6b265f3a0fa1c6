//go:build faults

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// rawSock is a hand-written Engine.IO v4 / Socket.IO v5 client over a raw
// WebSocket, for sending what no official client would.
type rawSock struct {
	ws *websocket.Conn
}

// dialRaw opens the WebSocket transport and reads the Engine.IO open
// packet.
func dialRaw(base string) (*rawSock, error) {
	u := strings.Replace(base, "http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(u, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	r := &rawSock{ws: ws}
	open, err := r.read(5 * time.Second)
	if err != nil {
		ws.Close()
		return nil, err
	}
	if !strings.HasPrefix(open, "0{") {
		ws.Close()
		return nil, fmt.Errorf("no open packet: %q", open)
	}
	return r, nil
}

func (r *rawSock) close() { _ = r.ws.Close() }

// send writes one raw text message.
func (r *rawSock) send(s string) error {
	_ = r.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return r.ws.WriteMessage(websocket.TextMessage, []byte(s))
}

func (r *rawSock) sendBinary(b []byte) error {
	_ = r.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return r.ws.WriteMessage(websocket.BinaryMessage, b)
}

// read returns the next message that is not an Engine.IO ping (pings are
// answered).
func (r *rawSock) read(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		_ = r.ws.SetReadDeadline(deadline)
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			return "", err
		}
		if string(b) == "2" {
			_ = r.send("3")
			continue
		}
		return string(b), nil
	}
}

// connect sends the Socket.IO CONNECT of the main namespace with auth
// {token} and returns the answer: "" on success, else the error message.
func (r *rawSock) connect(token string) (string, error) {
	auth := "{}"
	if token != "" {
		b, _ := json.Marshal(map[string]string{"token": token})
		auth = string(b)
	}
	if err := r.send("40" + auth); err != nil {
		return "", err
	}
	for {
		m, err := r.read(5 * time.Second)
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(m, "40"):
			return "", nil
		case strings.HasPrefix(m, "44"):
			return m[2:], nil
		}
	}
}

// emitAck emits event(args...) with ack id id and returns the ack's first
// argument, skipping other packets (which it returns in others).
func (r *rawSock) emitAck(id int, event string, args ...any) (map[string]any, []string, error) {
	b, _ := json.Marshal(append([]any{event}, args...))
	if err := r.send(fmt.Sprintf("42%d%s", id, b)); err != nil {
		return nil, nil, err
	}
	var others []string
	prefix := fmt.Sprintf("43%d[", id)
	for {
		m, err := r.read(5 * time.Second)
		if err != nil {
			return nil, others, err
		}
		if !strings.HasPrefix(m, prefix) {
			others = append(others, m)
			continue
		}
		var resp []map[string]any
		if err := json.Unmarshal([]byte(m[len(prefix)-1:]), &resp); err != nil || len(resp) == 0 {
			return nil, others, fmt.Errorf("bad ack %q", m)
		}
		return resp[0], others, nil
	}
}

// rawEvent is a decoded EVENT packet: 2[name, payload, meta].
type rawEvent struct {
	Name string
	Room string
	Seq  int64
}

// parseEvent decodes a server EVENT message ("42[...]").
func parseEvent(m string) (rawEvent, bool) {
	if !strings.HasPrefix(m, "42[") {
		return rawEvent{}, false
	}
	var arr []json.RawMessage
	if json.Unmarshal([]byte(m[2:]), &arr) != nil || len(arr) < 1 {
		return rawEvent{}, false
	}
	var e rawEvent
	_ = json.Unmarshal(arr[0], &e.Name)
	if len(arr) >= 3 {
		var meta struct {
			Room string `json:"room"`
			Seq  int64  `json:"seq"`
		}
		_ = json.Unmarshal(arr[2], &meta)
		e.Room, e.Seq = meta.Room, meta.Seq
	}
	return e, true
}
