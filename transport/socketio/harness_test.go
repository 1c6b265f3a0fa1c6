package socketio_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/socketio"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	// The library's own timers (utils.SetTimeout: the engine's ping
	// interval, a polling transport's orderly-close timeout) are not
	// cleared on every close path; each ends by itself when it fires, at
	// most a library timeout (tens of seconds) later. Under load the
	// package can end while a few are still pending. Every other
	// goroutine, ours included, must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/zishang520/socket.io/v3/pkg/utils.SetTimeout.func1"),
		// The process's WebSocket poller runs for the life of the process.
		goleak.IgnoreAnyFunction("github.com/roomlog/roomlog/transport/socketio.(*wsPoller).loop"),
		goleak.IgnoreAnyFunction("github.com/roomlog/roomlog/transport/socketio.(*wsPoller).sweepLoop"))
}

// The real types satisfy the Hub's consumer-side interfaces, and the Hub
// is the projector's Emitter.
var (
	_ projector.Emitter      = (*socketio.Hub)(nil)
	_ socketio.Rooms         = (*eventstore.Store)(nil)
	_ socketio.Presence      = (*eventstore.Store)(nil)
	_ socketio.Volatile      = (*eventstore.Store)(nil)
	_ socketio.Authenticator = auth.Authenticator{}
)

// testSecret signs the tests' HS256 tokens.
var testSecret = []byte("roomlog-socketio-test-secret-0123456789abcdef")

const frontend = "http://frontend.test"

// checkFor polls f every step until it returns nil or total elapses.
var checkFor = eventstoretest.CheckFor

// testLogger writes to t.Log until the test ends; background goroutines
// that log later are silenced instead of panicking.
var testLogger = eventstoretest.Logger

// server is one roomlog process: a store, the membership and fan-out
// projectors woken by LISTEN, a Hub and an HTTP server with the Hub mounted
// on gin at /socket.io/*any, as cmd/roomlogd does.
type server struct {
	Store  *eventstore.Store
	Hub    *socketio.Hub
	URL    string
	HTTP   *httptest.Server
	fanout *projector.Runner
}

type serverOpts struct {
	Config socketio.Config
	// Membership runs the membership projection on this server (run it
	// on exactly one server per database).
	Membership bool
	// Volatile carries typing to other servers through NOTIFY.
	Volatile bool
	// Verifier overrides the HS256 test verifier.
	Verifier *auth.Verifier
}

// newDB returns a pool on a fresh migrated database.
func newDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return eventstoretest.New(t)
}

// samePool opens another pool on pool's database, as another process would.
func samePool(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newServer(t testing.TB, pool *pgxpool.Pool, o serverOpts) *server {
	t.Helper()
	ctx := context.Background()
	logger := testLogger(t, slog.LevelWarn)
	// Wired as roomlogd wires it: this process's commits reach the fan-out
	// by hand-off, everything else by the tail.
	live := &projector.Fanout{}
	store := eventstore.New(pool, logger, &eventstore.Config{HandoffAfter: live.Position, Handoff: live.Handoff})
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Stop)

	verifier := o.Verifier
	if verifier == nil {
		v, err := auth.NewVerifier(auth.Config{HSSecret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		verifier = v
	}
	cfg := o.Config
	if cfg.FrontendOrigin == "" {
		cfg.FrontendOrigin = frontend
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 200 * time.Millisecond
		cfg.PresenceTTL = time.Second
	}
	params := socketio.HubParams{
		Config:   cfg,
		Auth:     auth.Authenticator{Verifier: verifier, CookieName: "roomlog_session"},
		Rooms:    store,
		Members:  projector.MembershipView{Store: store},
		Presence: store,
		Logger:   logger,
	}
	if o.Volatile {
		params.Volatile = store
	}
	hub, err := socketio.NewHub(params)
	if err != nil {
		t.Fatal(err)
	}

	var runners []*projector.Runner
	if o.Membership {
		r, err := projector.New(projector.Config{
			Name: projector.MembershipName, Source: store, Handler: projector.Membership{Store: store},
			Checkpoints: store, HandlerSavesCheckpoint: true, Start: projector.FromBeginning,
			PollInterval: 100 * time.Millisecond, Logger: logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
	}
	live.Emitter = hub
	fanout, err := live.NewRunner(projector.Config{Source: store, PollInterval: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runners = append(runners, fanout)
	for _, r := range runners {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
	}
	lctx, cancel := context.WithCancel(ctx)
	listening := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.Listen(lctx, func() {
			for _, r := range runners {
				r.Wake()
			}
			once.Do(func() { close(listening) })
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-listening

	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	router := gin.New()
	router.Any("/socket.io/*any", gin.WrapH(hub.Handler()))
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		hub.Stop(sctx)
	})
	return &server{Store: store, Hub: hub, URL: srv.URL, HTTP: srv, fanout: fanout}
}

// token mints an HS256 token for user with roles.
func token(t testing.TB, user string, roles ...domain.Role) string {
	t.Helper()
	tok, err := auth.MintHS256(testSecret, domain.Principal{UserID: user, Roles: roles}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// appendEvent appends one event and returns its result.
func appendEvent(t testing.TB, s *eventstore.Store, typ string, payload string, rooms ...domain.Room) eventstore.AppendResult {
	t.Helper()
	if err := domain.ValidatePublish(typ, rooms, json.RawMessage(payload)); err != nil {
		t.Fatalf("invalid test event %s %s: %v", typ, payload, err)
	}
	res, err := s.Append(context.Background(), eventstore.AppendRequest{Type: typ, Rooms: rooms, Payload: json.RawMessage(payload), Producer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// grant makes users members of a shared room through the log and waits
// until the membership model has them and the server's fan-out has passed
// the grants, so that a socket joining afterwards starts after them.
func (srv *server) grant(t testing.TB, room domain.Room, users ...string) {
	t.Helper()
	s := srv.Store
	for _, u := range users {
		appendEvent(t, s, domain.EventRoomMemberAdded, fmt.Sprintf(`{"userId":%q}`, u), room)
	}
	members := projector.MembershipView{Store: s}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, u := range users {
			ok, err := members.IsMember(context.Background(), room, u)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s not yet a member of %s", u, room)
			}
		}
		return nil
	})
	srv.settled(t, room)
}

// settled waits until the server's fan-out has passed room's last event,
// so that a socket joining now starts after it.
func (s *server) settled(t testing.TB, room domain.Room) {
	t.Helper()
	page, err := s.Store.ReadRoom(context.Background(), room, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) == 0 {
		return
	}
	last := page.Events[len(page.Events)-1].Position
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if p := s.fanout.Position(); p.Less(last) {
			return fmt.Errorf("fan-out at %v, room's last event at %v", p, last)
		}
		return nil
	})
}

// jsMsg is one report of test/js/harness.js.
type jsMsg struct {
	T         string            `json:"t"`
	ID        string            `json:"id"`
	SID       string            `json:"sid"`
	Transport string            `json:"transport"`
	Recovered bool              `json:"recovered"`
	PID       *string           `json:"pid"`
	Offset    *string           `json:"offset"`
	Event     string            `json:"event"`
	Args      []json.RawMessage `json:"args"`
	Reason    string            `json:"reason"`
	Message   string            `json:"message"`
	Data      json.RawMessage   `json:"data"`
	Req       *int              `json:"req"`
	Resp      json.RawMessage   `json:"resp"`

	// swarm
	N             int      `json:"n"`
	Acked         int      `json:"acked"`
	OKAcks        int      `json:"okAcks"`
	Failed        int      `json:"failed"`
	ConnectErrors int      `json:"connectErrors"`
	Disconnects   int      `json:"disconnects"`
	Errors        []string `json:"errors"`
	Ms            int      `json:"ms"`
}

// nodeProc is one Node.js process running test/js/harness.js.
type nodeProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	wmu   sync.Mutex

	mu   sync.Mutex
	msgs []jsMsg
	done chan struct{}
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startNode starts a harness process. It fails the test, never skips it,
// when node or the npm dependencies are missing.
func startNode(t *testing.T) *nodeProc {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (Node.js 18+) is required for the Socket.IO client tests: %v", err)
	}
	root := repoRoot(t)
	modules := os.Getenv("ROOMLOG_NODE_MODULES")
	if modules == "" {
		modules = filepath.Join(root, "test", "js", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "socket.io-client", "package.json")); err != nil {
		t.Fatalf("socket.io-client is not installed in %s (run scripts/npm-deps.sh, or set ROOMLOG_NODE_MODULES): %v", modules, err)
	}
	cmd := exec.Command(bin, filepath.Join(root, "test", "js", "harness.js"))
	cmd.Env = append(os.Environ(), "ROOMLOG_NODE_MODULES="+modules)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = eventstoretest.LogWriter(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var m jsMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = jsMsg{T: "error", Message: "unparsable report: " + sc.Text()}
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, m)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		n.send(map[string]any{"op": "exit"})
		_ = stdin.Close()
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-n.done
		}
		_ = cmd.Wait()
		for _, m := range n.all() {
			if m.T == "error" {
				t.Errorf("node harness: %s", m.Message)
			}
		}
	})
	n.wait(t, 30*time.Second, "ready", func(m jsMsg) bool { return m.T == "ready" })
	return n
}

func (n *nodeProc) send(cmd map[string]any) {
	b, err := json.Marshal(cmd)
	if err != nil {
		n.t.Fatal(err)
	}
	n.wmu.Lock()
	defer n.wmu.Unlock()
	_, _ = n.stdin.Write(append(b, '\n'))
}

func (n *nodeProc) all() []jsMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]jsMsg(nil), n.msgs...)
}

// find returns the reports matching pred.
func (n *nodeProc) find(pred func(jsMsg) bool) []jsMsg {
	var out []jsMsg
	for _, m := range n.all() {
		if pred(m) {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the first report matching pred, waiting up to timeout.
func (n *nodeProc) wait(t testing.TB, timeout time.Duration, what string, pred func(jsMsg) bool) jsMsg {
	t.Helper()
	var got jsMsg
	checkFor(t, timeout, 5*time.Millisecond, func() error {
		if ms := n.find(pred); len(ms) > 0 {
			got = ms[0]
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("node exited while waiting for %s", what)
		default:
		}
		return fmt.Errorf("no %s yet", what)
	})
	return got
}

// client is one socket.io-client socket in a harness process.
type client struct {
	n   *nodeProc
	id  string
	mu  sync.Mutex
	req int
}

// emitSpec is an event to emit inside the connect handler.
type emitSpec struct {
	Event string `json:"event"`
	Args  []any  `json:"args"`
	Req   *int   `json:"req,omitempty"`
}

// connect opens a socket; opts are socket.io-client options.
func (n *nodeProc) connect(id, url string, opts map[string]any, onConnect ...emitSpec) *client {
	n.send(map[string]any{"op": "connect", "id": id, "url": url, "opts": opts, "onConnect": onConnect})
	return &client{n: n, id: id, req: 1000}
}

// wsOpts are the spec's client options, websocket only, with auth.token.
func wsOpts(tok string) map[string]any {
	return map[string]any{"transports": []string{"websocket"}, "withCredentials": true, "auth": map[string]any{"token": tok}}
}

// pollOpts use the default transports (polling, then upgrade).
func pollOpts(tok string) map[string]any {
	return map[string]any{"withCredentials": true, "auth": map[string]any{"token": tok}}
}

// connected waits for the socket's connect report and fails on
// connect_error.
func (c *client) connected(t testing.TB) jsMsg {
	t.Helper()
	m := c.n.wait(t, 20*time.Second, "connect of "+c.id, func(m jsMsg) bool {
		return m.ID == c.id && (m.T == "connect" || m.T == "connect_error")
	})
	if m.T != "connect" {
		t.Fatalf("%s: connect_error %s %s", c.id, m.Message, m.Data)
	}
	return m
}

// ackResp is the ack of a client event.
type ackResp struct {
	OK    bool `json:"ok"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a ackResp) String() string {
	if a.OK {
		return "ok"
	}
	if a.Error == nil {
		return "not ok, no error"
	}
	return a.Error.Code + ": " + a.Error.Message
}

// call emits event with args and an ack, and returns the ack.
func (c *client) call(t testing.TB, event string, args ...any) ackResp {
	t.Helper()
	c.mu.Lock()
	c.req++
	req := c.req
	c.mu.Unlock()
	if args == nil {
		args = []any{}
	}
	c.n.send(map[string]any{"op": "emit", "id": c.id, "event": event, "args": args, "req": req})
	m := c.n.wait(t, 20*time.Second, fmt.Sprintf("ack %d of %s %s", req, c.id, event), func(m jsMsg) bool {
		return m.T == "ack" && m.ID == c.id && m.Req != nil && *m.Req == req
	})
	var a ackResp
	if err := json.Unmarshal(m.Resp, &a); err != nil {
		t.Fatalf("%s %s: ack %s: %v", c.id, event, m.Resp, err)
	}
	return a
}

// mustOK calls event and fails unless the ack is {ok: true}.
func (c *client) mustOK(t testing.TB, event string, args ...any) {
	t.Helper()
	if a := c.call(t, event, args...); !a.OK {
		t.Fatalf("%s %s %v: %s", c.id, event, args, a)
	}
}

// emit emits event without an ack.
func (c *client) emit(event string, args ...any) {
	if args == nil {
		args = []any{}
	}
	c.n.send(map[string]any{"op": "emit", "id": c.id, "event": event, "args": args})
}

func (c *client) disconnect() { c.n.send(map[string]any{"op": "disconnect", "id": c.id}) }

// events returns the events the socket received, optionally only those
// named in names.
func (c *client) events(names ...string) []jsMsg {
	return c.n.find(func(m jsMsg) bool {
		if m.T != "event" || m.ID != c.id {
			return false
		}
		if len(names) == 0 {
			return true
		}
		for _, n := range names {
			if m.Event == n {
				return true
			}
		}
		return false
	})
}

// meta decodes an event's second argument.
func meta(t testing.TB, m jsMsg) socketio.Meta {
	t.Helper()
	if len(m.Args) < 2 {
		t.Fatalf("event %s has %d args, want payload and meta", m.Event, len(m.Args))
	}
	var md socketio.Meta
	if err := json.Unmarshal(m.Args[1], &md); err != nil {
		t.Fatal(err)
	}
	return md
}
