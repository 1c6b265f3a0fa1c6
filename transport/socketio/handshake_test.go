package socketio_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

// keys are the RS256 and ES256 keys of TestHandshake, plus one the server
// does not know.
type keys struct {
	rsa, ec, stranger any
	pem               []byte
}

func newKeys(t *testing.T) keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pemBytes []byte
	for _, pub := range []any{&rk.PublicKey, &ek.PublicKey} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return keys{rsa: rk, ec: ek, stranger: sk, pem: pemBytes}
}

func signed(t *testing.T, m jwt.SigningMethod, key any, user string, exp time.Time) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(m, jwt.MapClaims{
		"sub": user, "roles": []string{"buyer"}, "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	verifier, err := auth.NewVerifier(auth.Config{HSSecret: testSecret, PublicKeysPEM: k.pem})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, newDB(t), serverOpts{Membership: true, Verifier: verifier})
	node := startNode(t)

	hs := token(t, "u1", domain.RoleBuyer)
	later := time.Now().Add(time.Hour)
	ws := map[string]any{"transports": []string{"websocket"}, "withCredentials": true}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	polling := map[string]any{"withCredentials": true}

	accepted := []struct {
		name    string
		opts    map[string]any
		upgrade bool
	}{
		{"AuthTokenWebSocket", with(ws, "auth", map[string]any{"token": hs}), false},
		{"AuthTokenBearerPrefix", with(ws, "auth", map[string]any{"token": "Bearer " + hs}), false},
		{"AuthorizationHeader", with(ws, "extraHeaders", map[string]any{"authorization": "Bearer " + hs}), false},
		{"AuthorizationHeaderLowercaseScheme", with(ws, "extraHeaders", map[string]any{"authorization": "bearer " + hs}), false},
		{"CookieWebSocket", with(ws, "extraHeaders", map[string]any{"cookie": "other=1; roomlog_session=" + hs}), false},
		{"CookiePollingThenUpgrade", with(polling, "extraHeaders", map[string]any{"cookie": "roomlog_session=" + hs}), true},
		{"AuthTokenPollingThenUpgrade", with(polling, "auth", map[string]any{"token": hs}), true},
		{"RS256", with(ws, "auth", map[string]any{"token": signed(t, jwt.SigningMethodRS256, k.rsa, "u1", later)}), false},
		{"ES256", with(ws, "auth", map[string]any{"token": signed(t, jwt.SigningMethodES256, k.ec, "u1", later)}), false},
		{"AuthTokenWinsOverBadCookie", with(ws, "auth", map[string]any{"token": hs}, "extraHeaders", map[string]any{"cookie": "roomlog_session=garbage"}), false},
	}
	for _, tt := range accepted {
		t.Run("Accepted/"+tt.name, func(t *testing.T) {
			c := node.connect(tt.name, srv.URL, tt.opts)
			c.connected(t)
			if tt.upgrade {
				// The client starts with polling; the upgrade may finish
				// before or after the namespace connects.
				node.wait(t, 20*time.Second, "upgrade", func(m jsMsg) bool {
					return m.T == "upgrade" && m.ID == tt.name && m.Transport == "websocket"
				})
			}
			// The socket is the token's user: its own room is allowed,
			// another user's is not.
			c.mustOK(t, "join-user-room", "u1")
			if a := c.call(t, "join-user-room", "u2"); a.OK {
				t.Errorf("joined another user's room")
			}
			c.disconnect()
		})
	}

	hsOther, err := auth.MintHS256([]byte("another-secret-of-sufficient-length-0123"), domain.Principal{UserID: "u1"}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rejected := []struct {
		name string
		opts map[string]any
	}{
		{"NoCredentials", ws},
		{"NoCredentialsPolling", polling},
		{"EmptyToken", with(ws, "auth", map[string]any{"token": ""})},
		{"TokenNotAString", with(ws, "auth", map[string]any{"token": 42})},
		{"Garbage", with(ws, "auth", map[string]any{"token": "not.a.jwt"})},
		{"WrongSecret", with(ws, "auth", map[string]any{"token": hsOther})},
		{"Expired", with(ws, "auth", map[string]any{"token": signed(t, jwt.SigningMethodHS256, testSecret, "u1", time.Now().Add(-time.Hour))})},
		{"UnknownKey", with(ws, "auth", map[string]any{"token": signed(t, jwt.SigningMethodES256, k.stranger, "u1", later)})},
		{"AlgNone", with(ws, "auth", map[string]any{"token": noneToken(t)})},
		{"BasicScheme", with(ws, "extraHeaders", map[string]any{"authorization": "Basic " + hs})},
		{"WrongCookieName", with(ws, "extraHeaders", map[string]any{"cookie": "session=" + hs})},
		{"BadCookiePolling", with(polling, "extraHeaders", map[string]any{"cookie": "roomlog_session=garbage"})},
	}
	for _, tt := range rejected {
		t.Run("Rejected/"+tt.name, func(t *testing.T) {
			node.connect(tt.name, srv.URL, tt.opts)
			m := node.wait(t, 20*time.Second, "connect_error", func(m jsMsg) bool {
				return m.ID == tt.name && (m.T == "connect" || m.T == "connect_error")
			})
			if m.T != "connect_error" || m.Message != "unauthorized" || strings.ReplaceAll(string(m.Data), " ", "") != `{"code":401}` {
				t.Fatalf("got %s %q %s, want connect_error unauthorized {code:401}", m.T, m.Message, m.Data)
			}
		})
	}

	t.Run("CORS", func(t *testing.T) {
		get := func(origin string) *http.Response {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/socket.io/?EIO=4&transport=polling", nil)
			if err != nil {
				t.Fatal(err)
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		resp := get(frontend)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != frontend ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("frontend origin: %d, ACAO %q, ACAC %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"))
		}
		resp = get("http://evil.test")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") == "http://evil.test" {
			t.Errorf("foreign origin: %d, ACAO %q; want 403 without CORS grant", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if resp := get(""); resp.StatusCode != http.StatusOK {
			t.Errorf("no origin (a non-browser client): %d", resp.StatusCode)
		}
		// A WebSocket from another origin is refused too.
		evil := node.connect("EvilOriginWS", srv.URL, with(ws, "auth", map[string]any{"token": hs}, "extraHeaders", map[string]any{"origin": "http://evil.test"}))
		m := node.wait(t, 20*time.Second, "connect result", func(m jsMsg) bool {
			return m.ID == evil.id && (m.T == "connect" || m.T == "connect_error")
		})
		if m.T != "connect_error" {
			t.Errorf("WebSocket from a foreign origin connected")
		}
	})

	if st := srv.Hub.Stats(); st.Rejected < uint64(len(rejected)) {
		t.Errorf("Stats.Rejected = %d, want at least %d", st.Rejected, len(rejected))
	}
}

// noneToken is an unsigned token ("alg": "none").
func noneToken(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenExpiry: a connection ends when its token expires, and the same
// expired token cannot connect again (the client must refresh it).
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{})
	node := startNode(t)
	tok, err := auth.MintHS256(testSecret, domain.Principal{UserID: "exp1"}, 2*time.Second, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := node.connect("expiring", srv.URL, recOpts(tok, 200*time.Millisecond))
	c.connected(t)
	c.mustOK(t, "join-user-room", "exp1")
	c.waitDisconnects(t, 1)
	// socket.io-client reconnects with the same (now expired) token.
	m := node.wait(t, 20*time.Second, "connect_error after expiry", func(m jsMsg) bool {
		return m.ID == c.id && m.T == "connect_error"
	})
	if m.Message != "unauthorized" {
		t.Fatalf("reconnect with an expired token: %s %q, want connect_error unauthorized", m.T, m.Message)
	}
}
