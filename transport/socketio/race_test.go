package socketio_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestConnectRace covers zishang520/socket.io v3.0.6's CONNECT race: a
// client event that reaches the server right after CONNECT must be handled,
// never answered by closing the connection.
func TestConnectRace(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Membership: true})

	t.Run("SwarmJoinsOnConnect", func(t *testing.T) {
		// The product's client: emit join-* in the connect handler.
		node := startNode(t)
		for _, s := range []struct {
			name string
			n    int
			opts map[string]any
		}{
			{"websocket", 500, map[string]any{"transports": []string{"websocket"}, "withCredentials": true}},
			{"polling", 100, map[string]any{"withCredentials": true}},
		} {
			tokens := make([]string, s.n)
			for i := range tokens {
				tokens[i] = token(t, strconv.Itoa(i))
			}
			node.send(map[string]any{"op": "swarm", "id": s.name, "url": srv.URL, "opts": s.opts, "tokens": tokens,
				"event": "join-user-room", "args": []any{"$i"}})
			m := node.wait(t, 90*time.Second, "swarm "+s.name, func(m jsMsg) bool { return m.T == "swarm" && m.ID == s.name })
			t.Logf("%s swarm: %d sockets, %d acks (%d ok), %d failed, %d ms", s.name, m.N, m.Acked, m.OKAcks, m.Failed, m.Ms)
			if m.Acked != s.n || m.OKAcks != s.n || m.Failed != 0 || m.Disconnects != 0 || m.ConnectErrors != 0 {
				t.Errorf("%s swarm: %+v", s.name, m)
			}
		}
		st := srv.Hub.Stats()
		if st.Connections < 600 {
			t.Errorf("%d connections, want 600", st.Connections)
		}
		if len(st.Disconnects) != 0 {
			t.Errorf("server-side disconnects during the swarm: %v", st.Disconnects)
		}
	})

	t.Run("PipelinedWebSocket", func(t *testing.T) {
		// A raw client sends CONNECT and an event without waiting for the
		// reply: the widest possible window.
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() { errs <- pipelinedWS(srv.URL, token(t, "p"+strconv.Itoa(i)), "p"+strconv.Itoa(i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("PipelinedPolling", func(t *testing.T) {
		for i := range 10 {
			if err := pipelinedPolling(srv.URL, token(t, "q"+strconv.Itoa(i)), "q"+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("WithoutTheGateTheLibraryDropsTheConnection", func(t *testing.T) {
		// Proof that PipelinedWebSocket tests something: the same
		// clients against a Hub without the gate lose connections.
		bare := newServer(t, newDB(t), serverOpts{})
		bare.Hub.DisableGate()
		failed := 0
		for i := range 40 {
			if err := pipelinedWS(bare.URL, token(t, "p"+strconv.Itoa(i)), "p"+strconv.Itoa(i)); err != nil {
				failed++
			}
		}
		t.Logf("without the gate, %d of 40 pipelined connections were dropped", failed)
		if failed == 0 {
			t.Errorf("the library no longer drops pipelined events; is the gate still needed?")
		}
	})
}

// pipelinedWS opens a raw Engine.IO v4 WebSocket, writes CONNECT and
// join-user-room back to back, and expects the CONNECT reply and the ack.
func pipelinedWS(base, tok, user string) error {
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, open, err := ws.ReadMessage(); err != nil || !bytes.HasPrefix(open, []byte("0{")) {
		return fmt.Errorf("open: %q %v", open, err)
	}
	connect, _ := json.Marshal(map[string]string{"token": tok})
	var batch bytes.Buffer
	if err := ws.WriteMessage(websocket.TextMessage, append([]byte("40"), connect...)); err != nil {
		return err
	}
	fmt.Fprintf(&batch, `421["join-user-room",%q]`, user)
	if err := ws.WriteMessage(websocket.TextMessage, batch.Bytes()); err != nil {
		return err
	}
	var got []string
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: connection lost after %q: %v", user, got, err)
		}
		got = append(got, string(msg))
		if string(msg) == "2" { // ping
			continue
		}
		if string(msg) == `431[{"ok":true}]` {
			if !strings.HasPrefix(got[0], "40{") {
				return fmt.Errorf("%s: got %q", user, got)
			}
			return nil
		}
		if len(got) > 5 {
			return fmt.Errorf("%s: got %q", user, got)
		}
	}
}

// pipelinedPolling does the same over polling, with CONNECT and the event
// in one POST body.
func pipelinedPolling(base, tok, user string) error {
	url := base + "/socket.io/?EIO=4&transport=polling"
	body, err := get(url)
	if err != nil {
		return err
	}
	var open struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		return fmt.Errorf("open: %q", body)
	}
	url += "&sid=" + open.SID
	connect, _ := json.Marshal(map[string]string{"token": tok})
	payload := "40" + string(connect) + "\x1e" + fmt.Sprintf(`421["join-user-room",%q]`, user)
	resp, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader(payload))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post: %s", resp.Status)
	}
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		body, err := get(url)
		if err != nil {
			return fmt.Errorf("%s: poll after %q: %v", user, got, err)
		}
		for _, p := range strings.Split(body, "\x1e") {
			got = append(got, p)
			if p == "1" {
				return fmt.Errorf("%s: server closed the session after %q", user, got)
			}
			if p == `431[{"ok":true}]` {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no ack: %q", user, got)
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b), err
}

// TestPollingFlushLosesThePoll replays deterministically what CPU
// starvation did to the polling swarm: while a client upgrades, the
// library's NOOP answers a poll between the socket flush's writable check
// and its send. That flush runs on the poll request's own goroutine; had it
// waited there for the next poll, the NOOP would never have reached the
// client, which would never have polled again (the socket stalled, its
// writer dropped it as slow, pings timed out).
func TestPollingFlushLosesThePoll(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Membership: true})
	srv.Hub.StealPollOnFlush()
	client := &http.Client{Timeout: 10 * time.Second}
	poll := func(url string) string {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("poll: %s %q %v", resp.Status, b, err)
		}
		return string(b)
	}
	post := func(url, body string) {
		t.Helper()
		resp, err := client.Post(url, "text/plain;charset=UTF-8", strings.NewReader(body))
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %s", resp.Status)
		}
	}
	// pollFor polls until a packet starts with prefix.
	pollFor := func(url, prefix string) []string {
		t.Helper()
		var got []string
		for range 5 {
			for p := range strings.SplitSeq(poll(url), "\x1e") {
				got = append(got, p)
				if strings.HasPrefix(p, prefix) {
					return got
				}
			}
		}
		t.Fatalf("no %q in %q", prefix, got)
		return nil
	}

	url := srv.URL + "/socket.io/?EIO=4&transport=polling"
	var open struct {
		SID string `json:"sid"`
	}
	if body := poll(url); !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		t.Fatalf("open: %q", body)
	}
	url += "&sid=" + open.SID
	connect, _ := json.Marshal(map[string]string{"token": token(t, "u1")})
	post(url, "40"+string(connect))
	// The CONNECT reply (and the session offset) wait in the socket's
	// buffer: the next poll's flush is the one that loses the race.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := srv.Hub.Stats().Connections; n != 1 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	if got := poll(url); got != "6" {
		t.Fatalf("first poll: %q, want the NOOP", got)
	}
	pollFor(url, "40{")
	post(url, `421["join-user-room","u1"]`)
	pollFor(url, `431[{"ok":true}]`)
	if st := srv.Hub.Stats(); len(st.Disconnects) != 0 {
		t.Errorf("disconnects: %v", st.Disconnects)
	}
}
