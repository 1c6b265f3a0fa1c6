//go:build faults

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/transport/auth"
)

const otherKey = "test-only-api-key-other-0002"

// TestFaultAttacks runs hostile clients against one roomlogd process
// while a victim's control socket receives a steady stream of its events:
// forged handshakes, joins of another user's rooms, probes of unreadable
// rooms, SQL injection in every audit filter, malformed and oversized REST
// bodies, malformed Socket.IO packets on a raw WebSocket, and floods over
// the rate limits. Nobody gets in, the process stays up, and the control
// socket receives every event, in order, throughout.
func TestFaultAttacks(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(keyFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	u := eventstoretest.NewURL(t)
	d := newDaemon(t, "roomlogd", u, map[string]string{
		"ROOMLOG_JWT_PUBLIC_KEYS": keyFile, // RS256 and HS256 both accepted: the confusion case
		"ROOMLOG_API_KEYS":        "backend:" + testKey + ",other:" + otherKey,
		"ROOMLOG_RATE_PUBLISH":    "50",
		"ROOMLOG_RATE_SOCKET":     "20",
	})
	d.start()
	pool := poolFor(t, u)

	// The victim's control socket and a steady publisher (through the
	// "other" key, under its limit) for the whole test.
	victim := mint(t, "v1", domain.RoleSeller)
	ctl, err := dialRaw(d.base)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.close()
	if msg, err := ctl.connect(victim); err != nil || msg != "" {
		t.Fatalf("victim connect: %q %v", msg, err)
	}
	for i, ev := range [][]any{{"user-online", "v1"}, {"join-seller-room", "v1"}} {
		resp, _, err := ctl.emitAck(i+1, ev[0].(string), ev[1:]...)
		if err != nil || resp["ok"] != true {
			t.Fatalf("victim %v: %v %v", ev, resp, err)
		}
	}
	var (
		cmu      sync.Mutex
		ctlSeqs  = map[string][]int64{}
		ctlDone  = make(chan struct{})
		pubStop  = make(chan struct{})
		pubDone  = make(chan struct{})
		pubAcked atomic.Int64
		pubErrs  atomic.Int64
	)
	go func() {
		defer close(ctlDone)
		for {
			m, err := ctl.read(30 * time.Second)
			if err != nil {
				return
			}
			if e, ok := parseEvent(m); ok && e.Seq > 0 {
				cmu.Lock()
				ctlSeqs[e.Room] = append(ctlSeqs[e.Room], e.Seq)
				cmu.Unlock()
			}
		}
	}()
	go func() {
		defer close(pubDone)
		for i := 0; i < 10_000; i++ {
			select {
			case <-pubStop:
				return
			case <-time.After(40 * time.Millisecond): // a steady 25 events/s
			}
			body := fmt.Sprintf(`{"event":"x-fault","rooms":["user-v1","seller-v1"],"payload":{"k":"ctl-%d"},"id":"ctl-%d"}`, i, i)
			r := publishRaw(d.base, otherKey, []byte(body))
			if r.err != nil || r.status != 201 {
				pubErrs.Add(1)
				t.Errorf("control publish %d: %v %d %s", i, r.err, r.status, r.code)
				continue
			}
			pubAcked.Add(1)
		}
	}()

	mallory := mint(t, "mallory", domain.RoleBuyer)

	t.Run("ForgedHandshakes", func(t *testing.T) {
		now := time.Now()
		expired, _ := auth.MintHS256([]byte(testSecret), domain.Principal{UserID: "v1"}, time.Hour, now.Add(-2*time.Hour), nil)
		otherSecret, _ := auth.MintHS256([]byte("another-secret-0123456789abcdef-xyz"), domain.Principal{UserID: "v1"}, time.Hour, now, nil)
		claims := jwt.MapClaims{"sub": "v1", "roles": []string{"admin"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		// HS/RS confusion: HS256 "signed" with the server's RSA public key.
		confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
		stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
		foreignRS, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(stranger)
		good := mint(t, "v1")
		tampered := good[:strings.LastIndex(good, ".")] + "." + strings.Repeat("A", 43)
		cases := map[string]string{
			"NoToken": "", "Expired": expired, "OtherSecret": otherSecret, "AlgNone": none,
			"HSRSConfusion": confused, "ForeignRS256": foreignRS, "BadSignature": tampered, "Garbage": "not.a.jwt",
		}
		rejected := 0
		for name, tok := range cases {
			s, err := dialRaw(d.base)
			if err != nil {
				rejected++ // refused at the Engine.IO handshake
				continue
			}
			msg, err := s.connect(tok)
			s.close()
			if err == nil && msg == "" {
				t.Errorf("%s: handshake accepted", name)
				continue
			}
			rejected++
		}
		t.Logf("FIGURES handshakes: %d forged, %d rejected, %d accepted", len(cases), rejected, len(cases)-rejected)
	})

	t.Run("OtherUsersRooms", func(t *testing.T) {
		s, err := dialRaw(d.base)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if msg, err := s.connect(mallory); err != nil || msg != "" {
			t.Fatalf("connect: %q %v", msg, err)
		}
		attempts := [][]any{
			{"join-user-room", "v1"}, {"user-online", "v1"}, {"join-seller-room", "v1"},
			{"join-buyer-room", "v1"}, {"join-seller-room", "mallory"}, // no seller role
			{"join-chat-room", "c1"}, {"join-request-room", "r1"},
			{"subscribe", map[string]any{"room": "user-v1", "after": 0}},
			{"subscribe", map[string]any{"room": "seller-v1"}},
			{"subscribe", map[string]any{"room": "sellers"}},
			{"typing-start", map[string]any{"chatId": "c1", "userId": "v1", "userName": "v"}},
		}
		var leaked []string
		for i, a := range attempts {
			resp, others, err := s.emitAck(i+1, a[0].(string), a[1:]...)
			if err != nil {
				t.Fatalf("%v: %v", a, err)
			}
			if resp["ok"] != false {
				t.Errorf("%v: %v, want a refusal", a, resp)
			}
			leaked = append(leaked, others...)
		}
		// Two seconds of the victim's traffic: none of it reaches mallory.
		end := time.Now().Add(2 * time.Second)
		for time.Now().Before(end) {
			m, err := s.read(time.Until(end))
			if err != nil {
				break
			}
			leaked = append(leaked, m)
		}
		var victimEvents int
		for _, m := range leaked {
			if e, ok := parseEvent(m); ok && strings.HasSuffix(e.Room, "v1") {
				victimEvents++
			}
		}
		if victimEvents > 0 {
			t.Errorf("mallory received %d of the victim's events", victimEvents)
		}
		t.Logf("FIGURES joins: %d refused attempts, %d victim events leaked", len(attempts), victimEvents)
	})

	t.Run("UnreadableRooms", func(t *testing.T) {
		get := func(path, tok string) (int, string) {
			req, _ := newGet(d.base+path, tok)
			resp, err := publishClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		c1, b1 := get("/api/v1/rooms/user-v1/events", mallory)
		c2, b2 := get("/api/v1/rooms/user-nobody/events", mallory)
		c3, b3 := get("/api/v1/rooms/seller-v1/events?after=1", mallory)
		if c1 != 404 || c1 != c2 || b1 != b2 || c3 != 404 || b3 != b1 {
			t.Errorf("unreadable vs nonexistent differ: %d %q / %d %q / %d %q", c1, b1, c2, b2, c3, b3)
		}
		for _, p := range []string{"/api/v1/audit/events?room=user-v1", "/api/v1/audit/rooms/user-v1/verify", "/api/v1/audit/export?room=user-v1"} {
			if c, b := get(p, mallory); c != 403 || strings.Contains(b, "ctl-") {
				t.Errorf("%s as a non-auditor: %d %s", p, c, b)
			}
		}
	})

	t.Run("SQLInjection", func(t *testing.T) {
		auditor := mint(t, "aud", domain.RoleAuditor)
		var before int64
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM events").Scan(&before); err != nil {
			t.Fatal(err)
		}
		injections := []string{`' OR '1'='1`, `'; DROP TABLE events; --`, `x' UNION SELECT * FROM idempotency_keys --`,
			`'||pg_sleep(3)||'`, `%`, `_`, `\`, `1; SELECT pg_sleep(3)`, `user-v1' --`, `{"a":1}`}
		params := []string{"room", "type", "producer", "eventId", "from", "to", "contains", "order", "cursor", "limit"}
		var n, ok200, bad400, slow, fivexx int
		var slowest time.Duration
		for _, p := range params {
			for _, inj := range injections {
				n++
				start := time.Now()
				req, _ := newGet(d.base+"/api/v1/audit/events?"+url.Values{p: {inj}}.Encode(), auditor)
				resp, err := publishClient.Do(req)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("%s=%q: %v", p, inj, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				slowest = max(slowest, took)
				switch {
				case resp.StatusCode == 200:
					ok200++
					// A filter that matched would have to match literally:
					// no event has such a room, type, producer or payload.
					if bytes.Contains(body, []byte(`"seq"`)) && p != "order" && p != "limit" && p != "contains" && p != "cursor" {
						t.Errorf("%s=%q matched events: %.200s", p, inj, body)
					}
				case resp.StatusCode == 400:
					bad400++
				default:
					if resp.StatusCode >= 500 {
						fivexx++
					}
					t.Errorf("%s=%q: %d %.200s", p, inj, resp.StatusCode, body)
				}
				if took > 2*time.Second {
					slow++
					t.Errorf("%s=%q took %v", p, inj, took)
				}
			}
		}
		var after int64
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM events").Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after < before {
			t.Errorf("the log shrank from %d to %d rows", before, after)
		}
		t.Logf("FIGURES sql-injection: %d requests, %d answered 200 (literal match), %d answered 400, %d 5xx, %d slow, slowest %v", n, ok200, bad400, fivexx, slow, slowest.Round(time.Millisecond))
	})

	t.Run("MalformedREST", func(t *testing.T) {
		post := func(body io.Reader, length int64) (int, string) {
			req, _ := http.NewRequest("POST", d.base+"/api/v1/events", body)
			req.ContentLength = length
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := publishClient.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		huge := bytes.Repeat([]byte("a"), 80<<20) // over the default body limit (1000 × 72 KiB)
		cases := []struct {
			name string
			body func() (io.Reader, int64)
			want int
		}{
			{"Oversized", func() (io.Reader, int64) { return bytes.NewReader(huge), int64(len(huge)) }, 413},
			{"OversizedChunked", func() (io.Reader, int64) {
				return io.MultiReader(strings.NewReader(`{"event":"x-a","room":"user-a","payload":{"a":"`), bytes.NewReader(huge)), -1
			}, 413},
			{"Truncated", func() (io.Reader, int64) { return strings.NewReader(`{"event":"x-a","room":"user-a","payload":{`), -1 }, 400},
			{"DeepNesting", func() (io.Reader, int64) {
				return strings.NewReader(`{"event":"x-a","room":"user-a","payload":{"a":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}}`), -1
			}, 400},
			{"NotJSON", func() (io.Reader, int64) { return strings.NewReader("\x00\xff\xfe garbage"), -1 }, 400},
			{"Array", func() (io.Reader, int64) { return strings.NewReader(`[1,2,3]`), -1 }, 400},
		}
		for _, c := range cases {
			// Stay under the publish rate limit of the backend key.
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			body, n := c.body()
			code, resp := post(body, n)
			if code == 0 && c.want == 413 {
				// The server may close the connection before reading the
				// whole body; the client then sees a write error.
				t.Logf("%s: connection closed early (%s) after %v", c.name, resp, time.Since(start))
				continue
			}
			if code != c.want {
				t.Errorf("%s: %d %.200s, want %d", c.name, code, resp, c.want)
			}
			t.Logf("%s: %d in %v", c.name, code, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("MalformedPackets", func(t *testing.T) {
		junk := make([]byte, 4096)
		_, _ = rand.Read(junk)
		cases := []struct {
			name string
			send func(s *rawSock) error
		}{
			{"RandomText", func(s *rawSock) error { return s.send(strings.ToValidUTF8(string(junk), "?")) }},
			{"RandomBinary", func(s *rawSock) error { return s.sendBinary(junk) }},
			{"EngineType9", func(s *rawSock) error { return s.send("9hello") }},
			{"SocketType9", func(s *rawSock) error { return s.send("49[\"x\"]") }},
			{"TruncatedJSON", func(s *rawSock) error { return s.send(`42[`) }},
			{"TruncatedEvent", func(s *rawSock) error { return s.send(`42["join-user-room","mal`) }},
			{"DeepNesting", func(s *rawSock) error {
				return s.send(`42["x",` + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + `]`)
			}},
			{"HugeAttachmentCount", func(s *rawSock) error { return s.send(`4599999999-["x",{"_placeholder":true,"num":0}]`) }},
			{"AttachmentMismatch", func(s *rawSock) error {
				if err := s.send(`451-["x",{"_placeholder":true,"num":7}]`); err != nil {
					return err
				}
				return s.sendBinary([]byte{1, 2, 3})
			}},
			{"BadNamespace", func(s *rawSock) error { return s.send(`40/admin,{}`) }},
			{"OverMaxPayload", func(s *rawSock) error { return s.send(`42["x","` + strings.Repeat("a", 200<<10) + `"]`) }},
			{"EventNotArray", func(s *rawSock) error { return s.send(`42{"a":1}`) }},
			{"NumberEventName", func(s *rawSock) error { return s.send(`427[12345,{}]`) }},
		}
		var closed, open int
		var slowest time.Duration
		for _, c := range cases {
			s, err := dialRaw(d.base)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if msg, err := s.connect(mallory); err != nil || msg != "" {
				t.Fatalf("%s: connect %q %v", c.name, msg, err)
			}
			start := time.Now()
			if err := c.send(s); err != nil {
				t.Logf("%s: send: %v", c.name, err)
			}
			// The offender is either closed or answered; it must never
			// take the process down. Read until close or 1s of silence.
			var got []string
			isClosed := false
			for {
				m, err := s.read(time.Second)
				if err != nil {
					isClosed = !isTimeout(err)
					break
				}
				got = append(got, m)
			}
			took := time.Since(start)
			if isClosed {
				closed++
				slowest = max(slowest, took)
			} else {
				open++
				// Still connected: it must still work and not have been
				// let in anywhere.
				// (After a CONNECT to an unknown namespace the library
				// answers CONNECT_ERROR and leaves the main namespace
				// up; an ack that does not come is no access either.)
				resp, _, err := s.emitAck(99, "join-user-room", "v1")
				if resp["ok"] == true {
					t.Errorf("%s: after the packet, a join of another user's room was accepted", c.name)
				}
				t.Logf("%s: still open; a join of another user's room then answered %v (%v)", c.name, resp, err)
			}
			t.Logf("%s: closed=%v after %v, answers %.120q", c.name, isClosed, took.Round(time.Millisecond), got)
			s.close()
			if code, _ := do(t, "GET", d.base+"/healthz", "", ""); code != 200 {
				t.Fatalf("%s: healthz %d", c.name, code)
			}
		}
		t.Logf("FIGURES malformed-packets: %d kinds, %d connections closed (slowest %v), %d left open and still refusing, process alive", len(cases), closed, slowest.Round(time.Millisecond), open)
	})

	t.Run("RateLimits", func(t *testing.T) {
		// Publish: 300 requests as fast as 4 workers go, against 50/s
		// with a burst of 100.
		var ok, limited, other, withRetryAfter atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 75 {
					r := publish(d.base, fmt.Sprintf("flood-%d-%d", w, i), []string{"user-flood"}, map[string]any{"k": fmt.Sprintf("flood-%d-%d", w, i)})
					switch {
					case r.err == nil && r.status == 201:
						ok.Add(1)
					case r.err == nil && r.status == 429 && r.code == "rate_limited":
						limited.Add(1)
						if r.header.Get("Retry-After") != "" {
							withRetryAfter.Add(1)
						}
					default:
						other.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if limited.Load() == 0 || other.Load() > 0 || withRetryAfter.Load() != limited.Load() {
			t.Errorf("publish flood: %d ok, %d rate_limited (%d with Retry-After), %d other", ok.Load(), limited.Load(), withRetryAfter.Load(), other.Load())
		}
		// Socket: 500 acked events as fast as one socket sends them,
		// against 20/s with a burst of 40: refusals, then a disconnect.
		s, err := dialRaw(d.base)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if msg, err := s.connect(mallory); err != nil || msg != "" {
			t.Fatalf("connect: %q %v", msg, err)
		}
		for i := range 500 {
			if s.send(fmt.Sprintf(`42%d["leave-chat-room","c%d"]`, i+1, i)) != nil {
				break
			}
		}
		var acks, sockLimited int
		disconnected := false
		start := time.Now()
		for {
			m, err := s.read(5 * time.Second)
			if err != nil {
				disconnected = !isTimeout(err)
				break
			}
			if strings.HasPrefix(m, "43") {
				acks++
				if strings.Contains(m, `"rate_limited"`) {
					sockLimited++
				}
			}
		}
		if sockLimited == 0 || !disconnected {
			t.Errorf("socket flood: %d acks, %d rate_limited, disconnected=%v", acks, sockLimited, disconnected)
		}
		t.Logf("FIGURES rate-limits: publish flood 300 requests → %d ok, %d 429 rate_limited with Retry-After; socket flood 500 events → %d acks (%d rate_limited), disconnected=%v after %v",
			ok.Load(), limited.Load(), acks, sockLimited, disconnected, time.Since(start).Round(time.Millisecond))
	})

	// The control stream: every event of the victim's rooms, in order,
	// despite everything above.
	close(pubStop)
	<-pubDone
	_, heads := checkLog(t, pool)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmu.Lock()
		n1, n2 := len(ctlSeqs["user-v1"]), len(ctlSeqs["seller-v1"])
		cmu.Unlock()
		if int64(n1) == heads["user-v1"] && int64(n2) == heads["seller-v1"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // waiting for the last deliveries
	}
	ctl.close()
	<-ctlDone
	var gaps, received int
	for _, room := range []string{"user-v1", "seller-v1"} {
		seqs := ctlSeqs[room]
		received += len(seqs)
		for i, s := range seqs {
			if s != int64(i+1) {
				gaps++
			}
		}
		if int64(len(seqs)) != heads[room] {
			t.Errorf("control socket got %d events of %s, the log has %d", len(seqs), room, heads[room])
		}
	}
	if gaps > 0 {
		t.Errorf("control socket saw %d out-of-order or missing seqs", gaps)
	}
	if !d.running() {
		t.Fatal("roomlogd died")
	}
	t.Logf("FIGURES attacks/control: %d publishes acknowledged (%d failed), %d deliveries to the victim, %d gaps; process alive", pubAcked.Load(), pubErrs.Load(), received, gaps)
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return err != nil && strings.Contains(err.Error(), "timeout") || (asTimeout(err, &ne) && ne.Timeout())
}

func asTimeout(err error, target *interface{ Timeout() bool }) bool {
	for e := err; e != nil; {
		if t, ok := e.(interface{ Timeout() bool }); ok {
			*target = t
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}
