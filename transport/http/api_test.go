package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	def := (*httpapi.Config)(nil).WithDefaults()
	if def.MaxPayloadBytes != 64<<10 || def.MaxBodyBytes != 1000*(64<<10+8<<10) ||
		def.AuditStatementTimeout != 10*time.Second || def.RetryAfter != 2*time.Second || def.ExportPageRows != 500 {
		t.Fatalf("defaults = %+v", def)
	}
	derived := (&httpapi.Config{MaxPayloadBytes: 1 << 10}).WithDefaults()
	if derived.MaxBodyBytes != 1000*(1<<10+8<<10) {
		t.Fatalf("derived MaxBodyBytes = %d", derived.MaxBodyBytes)
	}

	keys, err := auth.ParseAPIKeys("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		params  httpapi.Params
		wantErr string
	}{
		{"NoStore", httpapi.Params{Users: auth.Authenticator{}, Producers: keys}, "Params.Store"},
		{"NoUsers", httpapi.Params{Store: nilStore{}, Producers: keys}, "Params.Users"},
		{"NoProducers", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}}, "Params.Producers"},
		{"NegativePayload", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys, Config: &httpapi.Config{MaxPayloadBytes: -1}}, "Config.MaxPayloadBytes"},
		{"BodyBelowPayload", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys, Config: &httpapi.Config{MaxPayloadBytes: 100, MaxBodyBytes: 10}}, "Config.MaxBodyBytes"},
		{"Timeout", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys, Config: &httpapi.Config{AuditStatementTimeout: time.Microsecond}}, "Config.AuditStatementTimeout"},
		{"RetryAfter", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys, Config: &httpapi.Config{RetryAfter: -time.Second}}, "Config.RetryAfter"},
		{"ExportPage", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys, Config: &httpapi.Config{ExportPageRows: 5000}}, "Config.ExportPageRows"},
		{"OK", httpapi.Params{Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := httpapi.NewServer(tt.params)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// nilStore satisfies httpapi.Store for tests that never reach it.
type nilStore struct{ httpapi.Store }

func TestHealth(t *testing.T) {
	t.Parallel()
	t.Run("Healthy", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true, ready: func(ctx context.Context) error { return nil }})
		golden(t, "healthz", b.get(t, http.StatusOK, "/healthz"))
		golden(t, "readyz_ok", b.get(t, http.StatusOK, "/readyz"))
	})
	t.Run("NotReady", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true, ready: func(ctx context.Context) error {
			return &domain.Error{Code: domain.CodeUnavailable, Message: "database unavailable",
				Fields: []domain.FieldError{{Field: "database", Message: "unreachable"}}, Err: errBoom}
		}})
		r := b.get(t, http.StatusServiceUnavailable, "/readyz")
		golden(t, "readyz_unavailable", r)
		if strings.Contains(string(r.body), "secret") {
			t.Fatalf("internal detail leaked: %s", r.body)
		}
	})
	t.Run("NotReadyOpaque", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true, ready: func(ctx context.Context) error { return errBoom }})
		r := b.get(t, http.StatusServiceUnavailable, "/readyz")
		if got := decode[map[string]map[string]any](t, r)["error"]["message"]; got != "not ready" {
			t.Fatalf("message = %v", got)
		}
		if !strings.Contains(b.logged(), "secret internal detail") {
			t.Fatalf("the cause was not logged:\n%s", b.logged())
		}
	})
}

// TestRecovery makes a handler panic (through the presence fake) and checks
// the 500 error shape and the log.
func TestRecovery(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	b.presence.set(nil, nil, true)
	r := b.get(t, http.StatusInternalServerError, "/api/v1/presence?user=u1", as(t, "u1")...)
	golden(t, "internal_error", r)
	logs := b.logged()
	if !strings.Contains(logs, "handler panicked") || !strings.Contains(logs, "fake presence exploded") {
		t.Fatalf("panic not logged:\n%s", logs)
	}
	// The server keeps serving.
	b.presence.set(nil, nil, false)
	b.get(t, http.StatusOK, "/api/v1/presence?user=u1", as(t, "u1")...)
	// Internal errors are logged and never shown.
	b.presence.set(nil, errBoom, false)
	r = b.get(t, http.StatusInternalServerError, "/api/v1/presence?user=u1", as(t, "u1")...)
	if strings.Contains(string(r.body), "secret") || !strings.Contains(b.logged(), "secret internal detail") {
		t.Fatalf("body %s; logs:\n%s", r.body, b.logged())
	}
}

func TestNoRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	golden(t, "no_route", b.get(t, http.StatusNotFound, "/api/v1/nope"))
	// Trailing slashes are not redirected.
	b.get(t, http.StatusNotFound, "/healthz/")
}

// TestRequestLog checks that each request is logged with its route pattern
// and never with credentials or query strings.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	tok := token(t, "u1")
	b.get(t, http.StatusOK, "/api/v1/rooms/user-u1/events?after=0&limit=5", "Authorization", "Bearer "+tok)
	b.do(t, http.MethodPost, "/api/v1/events", `{}`, "X-API-Key", marketKey)
	logs := b.logged()
	for _, want := range []string{"route=/api/v1/rooms/:room/events status=200", "method=POST route=/api/v1/events status=400", "duration="} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{tok, marketKey, "user-u1", "limit=5"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

// TestOpenAPI fails when a route is undocumented or a documented route is
// missing. (TestMain also checks that every status a test observed is
// documented for its route.)
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	// A server with Socket.IO mounted, to see every route it can have.
	keys, _ := auth.ParseAPIKeys("")
	s, err := httpapi.NewServer(httpapi.Params{
		Store: nilStore{}, Users: auth.Authenticator{}, Producers: keys,
		SocketIO: http.NotFoundHandler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, r := range s.Handler().(*gin.Engine).Routes() {
		if strings.HasPrefix(r.Path, "/socket.io/") {
			continue // Socket.IO's transport, not a REST route
		}
		registered[strings.ToLower(r.Method)+" "+openAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[method+" "+path] = true
			if op.OperationID == "" || len(op.Responses) == 0 {
				t.Errorf("%s %s lacks an operationId or responses", method, path)
			}
		}
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !registered[d] {
			t.Errorf("openapi.json documents %s, which is not a route", d)
		}
	}
	if len(registered) < 10 {
		t.Errorf("only %d routes registered", len(registered))
	}
	// Every $ref resolves.
	for _, m := range refPattern.FindAllStringSubmatch(string(httpapi.OpenAPI()), -1) {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("unresolved $ref %s", m[0])
		}
	}
	// The document is served.
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	t.Logf("documented %d operations", len(documented))
}

var refPattern = regexp.MustCompile(`"\$ref": "#/components/([a-zA-Z]+)/([^"]+)"`)
