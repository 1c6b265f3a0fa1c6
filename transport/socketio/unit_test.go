package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	def := (*Config)(nil).WithDefaults()
	if def.OutboundQueue != 1024 || def.OutboundBytes != 1<<20 || def.WriteTimeout != 10*time.Second ||
		def.HeartbeatInterval != 5*time.Second || def.PresenceTTL != 15*time.Second || def.NodeID == "" ||
		def.MaxPayloadBytes != 64<<10 || def.PingInterval != 25*time.Second || def.PingTimeout != 20*time.Second {
		t.Errorf("defaults: %+v", def)
	}
	if d := (&Config{HeartbeatInterval: 10 * time.Second}).WithDefaults(); d.PresenceTTL != 30*time.Second {
		t.Errorf("PresenceTTL follows a long HeartbeatInterval: %s", d.PresenceTTL)
	}
	tests := []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{"Valid", Config{FrontendOrigin: "https://app.example.com"}, ""},
		{"ValidWithPort", Config{FrontendOrigin: "http://localhost:3000"}, ""},
		{"ValidTrailingSlash", Config{FrontendOrigin: "http://localhost:3000/"}, ""},
		{"Wildcard", Config{FrontendOrigin: "*"}, ""},
		{"NoOrigin", Config{}, "FrontendOrigin"},
		{"OriginWithPath", Config{FrontendOrigin: "https://app.example.com/x"}, "FrontendOrigin"},
		{"OriginNotHTTP", Config{FrontendOrigin: "ftp://app.example.com"}, "FrontendOrigin"},
		{"OriginNoHost", Config{FrontendOrigin: "https://"}, "FrontendOrigin"},
		{"TinyQueue", Config{FrontendOrigin: "*", OutboundQueue: 1}, "OutboundQueue"},
		{"TinyBytes", Config{FrontendOrigin: "*", OutboundBytes: 100}, "OutboundBytes"},
		{"TTLTooShort", Config{FrontendOrigin: "*", HeartbeatInterval: time.Second, PresenceTTL: 2 * time.Second}, "PresenceTTL"},
		{"PageTooBig", Config{FrontendOrigin: "*", ReplayPageSize: 5000}, "ReplayPageSize"},
		{"TinyPayload", Config{FrontendOrigin: "*", MaxPayloadBytes: 10}, "MaxPayloadBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.WithDefaults().validate()
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("validate = %v, want nil", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), "Config."+tt.field)):
				t.Errorf("validate = %v, want an error naming Config.%s", err, tt.field)
			}
		})
	}
}

func TestIsMainConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"0", true},
		{`0{"token":"x"}`, true},
		{`0/,{"token":"x"}`, true},
		{"0/", true},
		{`0/admin,{"token":"x"}`, false},
		{"0/admin", false},
		{`2["join-user-room","u1"]`, false},
		{`21["join-user-room","u1"]`, false},
		{"1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isMainConnect([]byte(tt.in)); got != tt.want {
			t.Errorf("isMainConnect(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestGate(t *testing.T) {
	t.Parallel()
	g := &gate{timeout: time.Minute}
	event := types.NewStringBufferString(`2["join-user-room","u1"]`)
	g.onData(event) // open: passes at once
	g.onData(types.NewStringBufferString(`0{"token":"x"}`))
	passed := make(chan struct{})
	go func() {
		g.onData(event)
		close(passed)
	}()
	select {
	case <-passed:
		t.Fatal("an event passed a closed gate")
	case <-time.After(50 * time.Millisecond):
		// Bounded observation of something that must not happen.
	}
	g.open()
	<-passed
	g.open() // idempotent

	// The timeout opens it too.
	g = &gate{timeout: 10 * time.Millisecond}
	g.onData(types.NewStringBufferString("0"))
	g.onData(event)
	g.onData(types.NewBytesBufferString("attachment"))
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	f := newFrame([]byte("0123456789"))
	o := newOutbox(4, 25)
	for i := range 2 {
		if !o.push(item{f: f}) {
			t.Fatalf("push %d refused", i)
		}
	}
	if o.push(item{f: f}) { // 30 bytes > 25
		t.Fatal("byte bound not enforced")
	}
	if !o.push(item{fn: func() {}}) || !o.push(item{fn: func() {}}) {
		t.Fatal("functions do not count bytes")
	}
	if o.push(item{fn: func() {}}) {
		t.Fatal("item bound not enforced")
	}
	if got := o.takeOrStop(); len(got) != 4 || o.len() != 0 {
		t.Fatalf("take returned %d, %d left", len(got), o.len())
	}
	// A single oversized frame is still accepted into an empty outbox.
	big := newFrame([]byte(strings.Repeat("x", 100)))
	if !o.push(item{f: big}) {
		t.Fatal("a lone large frame was refused")
	}
	o.takeOrStop()

	// pushWait waits for half the capacity.
	o = newOutbox(4, 1<<20)
	for range 3 {
		o.push(item{f: f})
	}
	done := make(chan error)
	go func() { done <- o.pushWait(context.Background(), item{f: f}) }()
	select {
	case err := <-done:
		t.Fatalf("pushWait returned %v on a full outbox", err)
	case <-time.After(50 * time.Millisecond):
	}
	o.takeOrStop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.push(item{f: f})
	o.push(item{f: f})
	go func() { done <- o.pushWait(ctx, item{f: f}) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("pushWait after cancel = %v", err)
	}
	o.close()
	if !o.push(item{f: f}) || o.len() != 0 {
		t.Fatal("a closed outbox must swallow pushes")
	}
	if err := o.pushWait(context.Background(), item{f: f}); !errors.Is(err, errOutboxClosed) {
		t.Fatalf("pushWait on a closed outbox = %v", err)
	}
}

func TestOutboxWriterOnDemand(t *testing.T) {
	t.Parallel()
	f := newFrame([]byte("x"))
	o := newOutbox(8, 1<<20)
	starts := 0
	start := func() { starts++ }
	o.push(item{f: f})
	if starts != 0 {
		t.Fatal("a writer started before setWriter")
	}
	o.setWriter(start)
	if starts != 1 {
		t.Fatalf("setWriter with waiting items: %d starts, want 1", starts)
	}
	o.push(item{f: f}) // the writer runs: no second one
	if got := o.takeOrStop(); len(got) != 2 || starts != 1 {
		t.Fatalf("took %d items after %d starts, want 2 after 1", len(got), starts)
	}
	if got := o.takeOrStop(); got != nil {
		t.Fatalf("empty outbox gave %d items", len(got))
	}
	// The writer stopped: the next push starts another.
	o.push(item{f: f})
	if starts != 2 {
		t.Fatalf("push after the writer stopped: %d starts, want 2", starts)
	}
	if err := o.pushWait(context.Background(), item{f: f}); err != nil || starts != 2 {
		t.Fatalf("pushWait while the writer runs: %v, %d starts", err, starts)
	}
	o.takeOrStop()
	o.takeOrStop()
	if err := o.pushWait(context.Background(), item{f: f}); err != nil || starts != 3 {
		t.Fatalf("pushWait after the writer stopped: %v, %d starts, want 3", err, starts)
	}
	// A writer that gave up (returned without takeOrStop's nil) is never
	// replaced, and a closed outbox starts none.
	o.push(item{f: f})
	o.close()
	o.push(item{f: f})
	if starts != 3 {
		t.Fatalf("%d starts, want 3", starts)
	}
	o = newOutbox(8, 1<<20)
	o.setWriter(func() { starts++ }) // a start that failed: no writer runs
	o.push(item{f: f})
	o.push(item{f: f})
	if starts != 4 {
		t.Fatalf("a failed start was retried: %d starts, want 4", starts)
	}
}

func TestEncodeDelivery(t *testing.T) {
	t.Parallel()
	d := domain.Delivery{
		Event: domain.Event{ID: "e1", Type: "new-offer", Payload: json.RawMessage(`{"requestId":"r1","offer":{"price":"1.50"},"sellerId":"s1"}`),
			OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)},
		Room: "buyer-b1", Seq: 42, Position: domain.Position{Txid: 812, ID: 77},
	}
	f, err := encodeDelivery(d)
	if err != nil {
		t.Fatal(err)
	}
	// The recovery offset is the last argument; meta stays second to last.
	want := `2["new-offer",{"requestId":"r1","offer":{"price":"1.50"},"sellerId":"s1"},{"room":"buyer-b1","seq":42,"id":"e1","at":"2026-01-02T03:04:05.123456Z"},"812:77"]`
	if string(f.text) != want {
		t.Errorf("frame\n%s\nwant\n%s", f.text, want)
	}
	wantPlain := `2["new-offer",{"requestId":"r1","offer":{"price":"1.50"},"sellerId":"s1"},{"room":"buyer-b1","seq":42,"id":"e1","at":"2026-01-02T03:04:05.123456Z"}]`
	if f.plain == nil || string(f.plain.text) != wantPlain {
		t.Errorf("plain frame %v", f.plain)
	}
	if o := encodeOffset(d.Position); string(o.text) != `2["session-offset","812:77"]` {
		t.Errorf("offset frame %s", o.text)
	}
	d.Payload = json.RawMessage(`{"broken"`)
	if _, err := encodeDelivery(d); err == nil {
		t.Error("invalid payload encoded")
	}
	v, err := encodeVolatile("user-typing", "chat-c1", json.RawMessage(`{"userId":"u1","isTyping":true}`))
	if err != nil || string(v.text) != `2["user-typing",{"userId":"u1","isTyping":true},{"room":"chat-c1"}]` {
		t.Errorf("volatile frame %s, %v", v.text, err)
	}
}

func TestAckResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, `{"ok":true}`},
		{domain.CanJoin(domain.Principal{}, "", false), `{"error":{"code":"forbidden","message":"not allowed"},"ok":false}`},
		{fmt.Errorf("wrapped: %w", domain.Errorf(domain.CodeInvalid, "bad id")), `{"error":{"code":"invalid","message":"bad id"},"ok":false}`},
		{errors.New("secret detail"), `{"error":{"code":"internal","message":"internal error"},"ok":false}`},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), `{"error":{"code":"unavailable","message":"timed out; retry"},"ok":false}`},
		{errOutboxClosed, `{"error":{"code":"unavailable","message":"socket is closing"},"ok":false}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(ackResponse(tt.err))
		if err != nil || string(b) != tt.want {
			t.Errorf("ackResponse(%v) = %s, want %s", tt.err, b, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	ack := func([]any, error) {}
	if args, a := splitAck([]any{"x", ack}); len(args) != 1 || a == nil {
		t.Errorf("splitAck with ack: %v %v", args, a != nil)
	}
	if args, a := splitAck([]any{"x"}); len(args) != 1 || a != nil {
		t.Errorf("splitAck without ack: %v", args)
	}
	for _, tt := range []struct {
		in   any
		want string
		ok   bool
	}{
		{"abc", "abc", true}, {float64(42), "42", true}, {float64(-3), "-3", true},
		{1.5, "", false}, {float64(1 << 60), "", false}, {true, "", false}, {nil, "", false}, {map[string]any{}, "", false},
	} {
		got, err := idArg([]any{tt.in}, 0)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("idArg(%v) = %q, %v", tt.in, got, err)
		}
	}
	if _, err := idArg(nil, 0); err == nil {
		t.Error("idArg of nothing")
	}
	for _, tt := range []struct {
		obj  map[string]any
		want int64
		ok   bool
	}{
		{map[string]any{}, -1, true}, {map[string]any{"after": nil}, -1, true}, {map[string]any{"after": float64(0)}, 0, true},
		{map[string]any{"after": float64(7)}, 7, true}, {map[string]any{"after": float64(-1)}, 0, false},
		{map[string]any{"after": 1.5}, 0, false}, {map[string]any{"after": "7"}, 0, false},
	} {
		got, err := afterField(tt.obj)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("afterField(%v) = %d, %v", tt.obj, got, err)
		}
	}
	if _, err := roomField(map[string]any{"room": "nope"}); domain.ErrorCode(err) != domain.CodeInvalid {
		t.Errorf("roomField(nope) = %v", err)
	}
	if _, err := idField(map[string]any{"chatId": "bad id"}, "chatId"); domain.ErrorCode(err) != domain.CodeInvalid {
		t.Errorf("idField(bad id) = %v", err)
	}
}

// replayOnly reads rooms but cannot check membership.
type replayOnly struct{}

func (replayOnly) ReadRoom(context.Context, domain.Room, int64, int) (eventstore.Page, error) {
	return eventstore.Page{}, nil
}

// replayAndMembers also checks membership.
type replayAndMembers struct{ replayOnly }

func (replayAndMembers) IsMember(context.Context, domain.Room, string) (bool, error) {
	return false, nil
}

type noAuth struct{}

func (noAuth) Authenticate(*http.Request, string) (domain.Principal, error) {
	return domain.Principal{}, errors.New("no")
}

// Membership checks come from HubParams.Members, else from Rooms if it
// can answer them; a Hub with neither is refused, never built to fail
// every join.
func TestHubMembersParam(t *testing.T) {
	t.Parallel()
	cfg := Config{FrontendOrigin: "http://localhost:3000"}
	tests := []struct {
		name    string
		p       HubParams
		wantErr bool
	}{
		{"RoomsChecksMembership", HubParams{Config: cfg, Auth: noAuth{}, Rooms: replayAndMembers{}}, false},
		{"SeparateMembers", HubParams{Config: cfg, Auth: noAuth{}, Rooms: replayOnly{}, Members: replayAndMembers{}}, false},
		{"NoMembershipAtAll", HubParams{Config: cfg, Auth: noAuth{}, Rooms: replayOnly{}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := NewHub(tt.p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewHub: err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && h.membership == nil {
				t.Fatal("the Hub has no membership checker")
			}
		})
	}
}

// TestOpensWebSocket checks which requests the Hub upgrades itself: a new
// session on WebSocket, and nothing the engine must see (a sid, polling,
// a request that is not an upgrade).
func TestOpensWebSocket(t *testing.T) {
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   bool
	}{
		{"NewWebSocketSession", "EIO=4&transport=websocket", upgrade, true},
		{"UpgradeOfAPollingSession", "EIO=4&transport=websocket&sid=abc", upgrade, false},
		{"EmptySid", "EIO=4&transport=websocket&sid=", upgrade, false},
		{"PollingTransport", "EIO=4&transport=polling", upgrade, false},
		{"NoTransport", "EIO=4", upgrade, false},
		{"NotAnUpgrade", "EIO=4&transport=websocket", http.Header{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/socket.io/?"+tc.query, nil)
			r.Header = tc.header
			if got := opensWebSocket(r); got != tc.want {
				t.Fatalf("opensWebSocket(%s) = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}
