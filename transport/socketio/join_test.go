package socketio_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

func TestJoins(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Membership: true})
	srv.grant(t, "request-r1", "b1", "s1")
	srv.grant(t, "chat-c1", "b1", "s1")
	srv.grant(t, "template-checkout-t1", "b1")
	node := startNode(t)

	clients := map[string]*client{}
	for _, c := range []struct {
		user  string
		roles []domain.Role
		poll  bool
	}{
		{"b1", []domain.Role{domain.RoleBuyer}, false},
		{"s1", []domain.Role{domain.RoleSeller}, true},
		{"x1", nil, false},
		{"adm", []domain.Role{domain.RoleAdmin}, true},
		{"aud", []domain.Role{domain.RoleAuditor}, false},
		{"42", []domain.Role{domain.RoleBuyer, domain.RoleSeller}, false},
	} {
		opts := wsOpts(token(t, c.user, c.roles...))
		if c.poll {
			opts = pollOpts(token(t, c.user, c.roles...))
		}
		clients[c.user] = node.connect(c.user, srv.URL, opts)
	}
	for _, c := range clients {
		c.connected(t)
	}

	tests := []struct {
		user, event string
		args        []any
		want        string // "ok" or an error code
	}{
		{"b1", "join-user-room", []any{"b1"}, "ok"},
		{"b1", "join-user-room", []any{"s1"}, "forbidden"},
		{"b1", "join-buyer-room", []any{"b1"}, "ok"},
		{"b1", "join-buyer-room", []any{"b2"}, "forbidden"},
		{"b1", "join-seller-room", []any{"b1"}, "forbidden"}, // no seller role
		{"x1", "join-buyer-room", []any{"x1"}, "forbidden"},  // no buyer role
		{"x1", "join-seller-room", []any{"x1"}, "forbidden"},
		{"s1", "join-seller-room", []any{"s1"}, "ok"},
		{"s1", "join-seller-room", []any{"s2"}, "forbidden"},
		{"s1", "join-buyer-room", []any{"s1"}, "forbidden"},
		{"b1", "join-request-room", []any{"r1"}, "ok"},
		{"s1", "join-request-room", []any{"r1"}, "ok"},
		{"x1", "join-request-room", []any{"r1"}, "forbidden"},     // not a member
		{"x1", "join-request-room", []any{"nosuch"}, "forbidden"}, // no such room: same answer
		{"b1", "join-request-room", []any{"r2"}, "forbidden"},     // member elsewhere only
		{"b1", "join-chat-room", []any{"c1"}, "ok"},
		{"s1", "join-chat-room", []any{"c1"}, "ok"},
		{"x1", "join-chat-room", []any{"c1"}, "forbidden"},
		{"adm", "join-chat-room", []any{"c1"}, "ok"},
		{"adm", "join-user-room", []any{"b1"}, "ok"},
		{"adm", "join-seller-room", []any{"s1"}, "ok"},
		{"adm", "join-request-room", []any{"nosuch"}, "ok"},
		{"aud", "join-user-room", []any{"b1"}, "forbidden"}, // auditors read history, never live
		{"aud", "join-user-room", []any{"aud"}, "ok"},
		{"42", "join-user-room", []any{42}, "ok"}, // numeric ids are accepted
		{"42", "join-buyer-room", []any{42}, "ok"},
		{"b1", "user-online", []any{"s1"}, "forbidden"},
		{"b1", "subscribe", []any{map[string]any{"room": "template-checkout-t1"}}, "ok"},
		{"s1", "subscribe", []any{map[string]any{"room": "template-checkout-t1"}}, "forbidden"},
		{"s1", "subscribe", []any{map[string]any{"room": "user-b1"}}, "forbidden"},
		{"x1", "subscribe", []any{map[string]any{"room": "global"}}, "ok"},
		{"x1", "unsubscribe", []any{map[string]any{"room": "chat-c1"}}, "ok"}, // leaving is always fine
		{"b1", "join-user-room", nil, "invalid"},
		{"b1", "join-user-room", []any{map[string]any{"id": "b1"}}, "invalid"},
		{"b1", "join-user-room", []any{"bad id!"}, "invalid"},
		{"b1", "join-user-room", []any{1.5}, "invalid"},
		{"b1", "subscribe", []any{map[string]any{"room": "bogus"}}, "invalid"},
		{"b1", "subscribe", []any{"user-b1"}, "invalid"},
		{"b1", "subscribe", []any{map[string]any{"room": "user-b1", "after": -1}}, "invalid"},
		{"b1", "typing-start", []any{"c1"}, "invalid"},
	}
	denied := map[string]string{}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%02d_%s_%s", i, tt.user, tt.event), func(t *testing.T) {
			a := clients[tt.user].call(t, tt.event, tt.args...)
			got := "ok"
			if !a.OK {
				if a.Error == nil {
					t.Fatalf("ack %+v has neither ok nor error", a)
				}
				got = a.Error.Code
				if got == "forbidden" {
					denied[a.Error.Message] = tt.user + " " + tt.event
				}
			}
			if got != tt.want {
				t.Fatalf("%s %s %v = %s, want %s", tt.user, tt.event, tt.args, a, tt.want)
			}
		})
	}
	t.Run("RefusalsRevealNothing", func(t *testing.T) {
		if len(denied) != 1 {
			t.Fatalf("refusals carry %d different messages, want one: %v", len(denied), denied)
		}
	})

	t.Run("EffectsAndLeaves", func(t *testing.T) {
		b1, s1, x1 := clients["b1"], clients["s1"], clients["x1"]
		// A join without an ack works too.
		x1.emit("join-user-room", "x1")
		x1.mustOK(t, "join-user-room", "x1")
		// join-seller-room joined sellers as well; leave-seller-room
		// leaves both.
		r := appendEvent(t, srv.Store, domain.EventNewPurchaseRequest, `{"_id":"r9","buyerId":"b9","n":1}`, domain.RoomSellers)
		waitEvent(t, s1, domain.EventNewPurchaseRequest, "sellers", r.Deliveries[0].Seq)
		s1.mustOK(t, "leave-seller-room", "s1")
		b1.mustOK(t, "leave-chat-room", "c1")
		b1.mustOK(t, "leave-request-room", "r1")
		b1.mustOK(t, "leave-buyer-room", "b1")
		appendEvent(t, srv.Store, domain.EventNewPurchaseRequest, `{"_id":"r9","buyerId":"b9","n":2}`, domain.RoomSellers)
		dc := appendEvent(t, srv.Store, domain.EventDeliveryConfirmed, `{"requestId":"r1"}`, "request-r1")
		appendEvent(t, srv.Store, domain.EventMessageDeleted, `{"chatId":"c1","messageId":"m1","deletedAt":"2026-01-01T00:00:00Z"}`, "chat-c1")
		appendEvent(t, srv.Store, domain.EventNewOffer, `{"requestId":"r1","offer":{},"sellerId":"s1"}`, "buyer-b1")
		last := appendEvent(t, srv.Store, domain.EventUnreadCountUpdate, `{"unreadCount":3}`, "user-x1")
		waitEvent(t, x1, domain.EventUnreadCountUpdate, "user-x1", last.Deliveries[0].Seq)
		// s1 still gets request-r1 (joined), b1 nothing of what it left.
		waitEvent(t, s1, domain.EventDeliveryConfirmed, "request-r1", dc.Deliveries[0].Seq)
		if evs := s1.events(domain.EventNewPurchaseRequest); len(evs) != 1 {
			t.Errorf("s1 got %d new-purchase-request, want 1 (it left sellers)", len(evs))
		}
		for _, e := range b1.events(domain.EventDeliveryConfirmed, domain.EventMessageDeleted, domain.EventNewOffer) {
			t.Errorf("b1 got %s after leaving its room", e.Event)
		}
		if n := len(x1.events(domain.EventUnreadCountUpdate)); n != 1 {
			t.Errorf("x1 got %d unread-count-update, want 1 (joined twice, delivered once)", n)
		}
	})
}

// waitEvent waits until c received event through room with seq.
func waitEvent(t testing.TB, c *client, event string, room domain.Room, seq int64) jsMsg {
	t.Helper()
	return c.n.wait(t, 20*time.Second, fmt.Sprintf("%s %s#%d at %s", event, room, seq, c.id), func(m jsMsg) bool {
		if m.T != "event" || m.ID != c.id || m.Event != event || len(m.Args) < 2 {
			return false
		}
		md := meta(t, m)
		return md.Room == room && md.Seq == seq
	})
}
