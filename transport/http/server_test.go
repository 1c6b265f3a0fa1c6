package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
	"github.com/roomlog/roomlog/transport/auth"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The store satisfies the API's consumer-side interface.
var _ httpapi.Store = (*eventstore.Store)(nil)

// Test credentials. The producer keys are configured as
// "market:<marketKey>,billing:<billingKey>".
const (
	jwtSecret  = "test-only-jwt-secret-0123456789abcdef"
	marketKey  = "market-test-key-0000000001"
	billingKey = "billing-test-key-000000002"
)

// t0 is the pinned time of the log's clock in tests.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 {
		code = checkObservedStatuses()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// observed collects "METHOD route status" from every test server's request
// log, so that TestMain can check the OpenAPI document lists each status
// the tests saw.
var observed sync.Map

// testClock is the log's clock: it stays where Set puts it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// logHandler writes records to t.Log and records request statuses.
type logHandler struct {
	t     testing.TB
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	vals := map[string]string{}
	add := func(a slog.Attr) {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		vals[a.Key] = a.Value.String()
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	if r.Message == "request" {
		observed.Store(vals["method"]+" "+vals["route"]+" "+vals["status"], true)
	}
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	if r.Level >= slog.LevelInfo && r.Message != "request" {
		h.t.Log(b.String())
	}
	return nil
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h logHandler) WithGroup(string) slog.Handler { return h }

// testBundle is one server on its own database.
type testBundle struct {
	srv      *httptest.Server
	api      *httpapi.Server
	store    *eventstore.Store
	pool     *pgxpool.Pool
	clock    *testClock
	presence *fakePresence

	logMu sync.Mutex
	logs  []string
}

// logged returns the log lines so far.
func (b *testBundle) logged() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return strings.Join(b.logs, "\n")
}

type setupOptions struct {
	config *httpapi.Config
	ready  func(ctx context.Context) error
	// deadDB points the store at a port where no database listens.
	deadDB bool
	// noMembership skips the membership projection.
	noMembership bool
	// noPresence leaves Params.Presence nil.
	noPresence bool
	// wrap, if set, wraps the store the server sees (to inject failures).
	wrap func(httpapi.Store) httpapi.Store
}

// setup starts a server on a fresh database, with the membership
// projection running, and stops everything when the test ends.
func setup(t testing.TB, o *setupOptions) *testBundle {
	t.Helper()
	if o == nil {
		o = &setupOptions{}
	}
	ctx := context.Background()
	b := &testBundle{clock: &testClock{t: t0}, presence: &fakePresence{}}
	logger := slog.New(logHandler{t: t, mu: &b.logMu, lines: &b.logs})
	if o.deadDB {
		cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		b.pool, err = pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.pool.Close)
	} else {
		b.pool = eventstoretest.New(t)
	}
	b.store = eventstore.New(b.pool, logger, &eventstore.Config{Now: b.clock.Now})
	if err := b.store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.store.Stop)
	if !o.deadDB && !o.noMembership {
		r, err := projector.New(projector.Config{
			Name:                   projector.MembershipName,
			Source:                 b.store,
			Handler:                projector.Membership{Store: b.store},
			Checkpoints:            b.store,
			HandlerSavesCheckpoint: true,
			Start:                  projector.FromBeginning,
			PollInterval:           20 * time.Millisecond,
			Logger:                 logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
	}
	verifier, err := auth.NewVerifier(auth.Config{HSSecret: []byte(jwtSecret)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseAPIKeys("market:" + marketKey + ",billing:" + billingKey)
	if err != nil {
		t.Fatal(err)
	}
	var store httpapi.Store = b.store
	if o.wrap != nil {
		store = o.wrap(store)
	}
	p := httpapi.Params{
		Store:     store,
		Users:     auth.Authenticator{Verifier: verifier},
		Producers: keys,
		Ready:     o.ready,
		Logger:    logger,
		Config:    o.config,
	}
	if !o.noPresence {
		p.Presence = b.presence
	}
	b.api, err = httpapi.NewServer(p)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(b.api.Handler())
	t.Cleanup(b.srv.Close)
	return b
}

// response is an answer as the client saw it.
type response struct {
	status int
	header http.Header
	body   []byte
	closed bool // the server closes the connection after this answer
}

func (r response) String() string { return fmt.Sprintf("HTTP %d %s", r.status, r.body) }

// do sends a request. body may be nil, a string or []byte; hdr holds
// header name/value pairs.
func (b *testBundle) do(t testing.TB, method, path string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		t.Fatalf("body of type %T", body)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: got, closed: res.Close}
}

// token mints a JWT for user with roles.
func token(t testing.TB, user string, roles ...domain.Role) string {
	t.Helper()
	tok, err := auth.MintHS256([]byte(jwtSecret), domain.Principal{UserID: user, Roles: roles}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// as returns the header pair that authenticates user with roles.
func as(t testing.TB, user string, roles ...domain.Role) []string {
	return []string{"Authorization", "Bearer " + token(t, user, roles...)}
}

// publish posts body with the market producer's key and wants want.
func (b *testBundle) publish(t testing.TB, want int, body string) response {
	t.Helper()
	r := b.do(t, http.MethodPost, "/api/v1/events", body, "X-API-Key", marketKey)
	if r.status != want {
		t.Fatalf("publish %s: %v, want %d", body, r, want)
	}
	return r
}

// get sends a GET with hdr and wants status want.
func (b *testBundle) get(t testing.TB, want int, path string, hdr ...string) response {
	t.Helper()
	r := b.do(t, http.MethodGet, path, nil, hdr...)
	if r.status != want {
		t.Fatalf("GET %s: %v, want %d", path, r, want)
	}
	return r
}

// decode unmarshals a response body.
func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// checkFor polls f every step until it returns nil or total elapses.
var checkFor = eventstoretest.CheckFor

// waitMember waits until the membership projection lists user in room.
func (b *testBundle) waitMember(t testing.TB, room domain.Room, user string, want bool) {
	t.Helper()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got, err := b.store.IsMember(context.Background(), room, user)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("member(%s, %s) = %v", room, user, got)
		}
		return nil
	})
}

var (
	uuidPattern   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	cursorPattern = regexp.MustCompile(`"next": ?"[^"]*"`)
)

// normalize replaces what differs between runs: event ids become
// <uuid-1>, <uuid-2>, … in order of first appearance, and cursors (which
// carry transaction ids) become <cursor>.
func normalize(b []byte) []byte {
	ids := map[string]string{}
	b = uuidPattern.ReplaceAllFunc(b, func(m []byte) []byte {
		if _, ok := ids[string(m)]; !ok {
			ids[string(m)] = fmt.Sprintf("<uuid-%d>", len(ids)+1)
		}
		return []byte(ids[string(m)])
	})
	return cursorPattern.ReplaceAll(b, []byte(`"next": "<cursor>"`))
}

// golden compares a response with testdata/<name>.golden: the status line,
// the headers a client relies on, and the body (JSON is indented for
// reading; its keys and values are exactly what was sent). Run with
// -update to rewrite the file after a deliberate change.
func golden(t testing.TB, name string, r response) {
	t.Helper()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "HTTP %d\n", r.status)
	for _, h := range []string{"Content-Type", "Retry-After", "WWW-Authenticate", "Content-Disposition"} {
		if v := r.header.Get(h); v != "" {
			fmt.Fprintf(&buf, "%s: %s\n", h, v)
		}
	}
	buf.WriteString("\n")
	body := r.body
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		var ind bytes.Buffer
		if err := json.Indent(&ind, body, "", "  "); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", name, err, body)
		}
		body = ind.Bytes()
	}
	buf.Write(normalize(body))
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteString("\n")
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs (run with -update if the change is deliberate)\ngot:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}

// fakePresence is an in-memory PresenceReader whose failures tests inject.
type fakePresence struct {
	mu       sync.Mutex
	statuses map[string]eventstore.PresenceStatus
	err      error
	panics   bool
	calls    [][]string
}

func (f *fakePresence) Presence(_ context.Context, users []string) ([]eventstore.PresenceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, users)
	if f.panics {
		panic("fake presence exploded")
	}
	if f.err != nil {
		return nil, f.err
	}
	var out []eventstore.PresenceStatus
	for _, u := range users {
		if s, ok := f.statuses[u]; ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// lastCall returns the users of the latest Presence call.
func (f *fakePresence) lastCall() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return nil
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakePresence) set(statuses map[string]eventstore.PresenceStatus, err error, panics bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses, f.err, f.panics = statuses, err, panics
}

// checkObservedStatuses reports statuses the tests observed that the
// OpenAPI document does not list for their route.
func checkObservedStatuses() int {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		return 1
	}
	var missing []string
	observed.Range(func(k, _ any) bool {
		parts := strings.Fields(k.(string))
		if len(parts) != 3 || parts[1] == "unmatched" || strings.HasPrefix(parts[1], "/socket.io/") {
			return true
		}
		op, ok := doc.Paths[openAPIPath(parts[1])][strings.ToLower(parts[0])]
		if !ok {
			missing = append(missing, k.(string)+" (route undocumented)")
			return true
		}
		if _, ok := op.Responses[parts[2]]; !ok {
			missing = append(missing, k.(string))
		}
		return true
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		fmt.Fprintf(os.Stderr, "openapi.json does not document these statuses the tests observed:\n  %s\n", strings.Join(missing, "\n  "))
		return 1
	}
	return 0
}

// openAPIPath turns a gin route (/rooms/:room/events) into an OpenAPI path
// (/rooms/{room}/events).
func openAPIPath(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

var errBoom = errors.New("boom: secret internal detail")
