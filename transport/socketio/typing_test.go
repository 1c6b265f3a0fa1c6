package socketio_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

func TestTyping(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	a := newServer(t, pool, serverOpts{Membership: true, Volatile: true})
	b := newServer(t, samePool(t, pool), serverOpts{Volatile: true})
	const chat = domain.Room("chat-c1")
	a.grant(t, chat, "b1", "s1", "s2", "s3")
	a.grant(t, "chat-c2", "s1")
	node := startNode(t)

	join := []emitSpec{{Event: "join-chat-room", Args: []any{"c1"}}}
	b1 := node.connect("b1", a.URL, wsOpts(token(t, "b1")), join...)
	b1tab := node.connect("b1-tab", a.URL, pollOpts(token(t, "b1")), join...)
	s1 := node.connect("s1", a.URL, wsOpts(token(t, "s1")), join...)
	s2 := node.connect("s2", b.URL, wsOpts(token(t, "s2")), join...) // the other server
	s3 := node.connect("s3", b.URL, wsOpts(token(t, "s3")))          // member, not in the room
	x1 := node.connect("x1", a.URL, wsOpts(token(t, "x1")))
	adm := node.connect("adm", a.URL, wsOpts(token(t, "adm", domain.RoleAdmin)), join...)
	everyone := []*client{b1, b1tab, s1, s2, s3, x1, adm}
	for _, c := range everyone {
		c.connected(t)
		c.mustOK(t, "join-user-room", c.id[:2]) // a round trip: the joins on connect are done
	}

	typing := func(c *client) []domain.UserTyping {
		var out []domain.UserTyping
		for _, m := range c.events(domain.EventUserTyping) {
			var p domain.UserTyping
			if err := json.Unmarshal(m.Args[0], &p); err != nil {
				t.Fatal(err)
			}
			if meta(t, m).Room != chat {
				t.Errorf("%s: user-typing meta %s", c.id, m.Args[1])
			}
			out = append(out, p)
		}
		return out
	}

	b1.mustOK(t, "typing-start", map[string]any{"chatId": "c1", "userId": "b1", "userName": "Bob"})
	receivers := []*client{b1tab, s1, s2, adm}
	for _, c := range receivers {
		node.wait(t, 20*time.Second, "typing at "+c.id, func(m jsMsg) bool { return m.ID == c.id && m.Event == domain.EventUserTyping })
	}
	b1.mustOK(t, "typing-stop", map[string]any{"chatId": "c1", "userId": "b1"})
	s3.mustOK(t, "typing-start", map[string]any{"chatId": "c1", "userId": "s3"}) // a member outside the room may type
	for _, c := range receivers {
		node.wait(t, 20*time.Second, "s3 typing at "+c.id, func(m jsMsg) bool {
			return m.ID == c.id && m.Event == domain.EventUserTyping && string(m.Args[0]) == `{"userId":"s3","isTyping":true}`
		})
	}

	refused := []struct {
		c    *client
		args map[string]any
	}{
		{b1, map[string]any{"chatId": "c1", "userId": "s1"}},   // as someone else
		{x1, map[string]any{"chatId": "c1", "userId": "x1"}},   // not a member
		{adm, map[string]any{"chatId": "c1", "userId": "adm"}}, // admins may watch, not type
		{b1, map[string]any{"chatId": "c2", "userId": "b1"}},   // another chat
	}
	for _, r := range refused {
		if ack := r.c.call(t, "typing-start", r.args); ack.OK || ack.Error.Code != "forbidden" {
			t.Errorf("%s typing-start %v = %s, want forbidden", r.c.id, r.args, ack)
		}
	}
	if ack := b1.call(t, "typing-start", map[string]any{"chatId": "c1", "userId": "b1", "userName": 7}); ack.OK || ack.Error.Code != "invalid" {
		t.Errorf("numeric userName = %s, want invalid", ack)
	}

	// Everything above has been delivered once a logged marker arrives
	// behind it (same socket queue).
	marker := appendEvent(t, a.Store, domain.EventMessageDeleted, `{"chatId":"c1","messageId":"m","deletedAt":"2026-01-01T00:00:00Z"}`, chat)
	for _, c := range []*client{b1, b1tab, s1, s2, adm} {
		waitEvent(t, c, domain.EventMessageDeleted, chat, marker.Deliveries[0].Seq)
	}
	// Each sender's indicators arrive once and in order. Two senders on
	// different servers have no order between them: b1's stop reaches s2
	// through the other server's bus, and s3's start, sent after it, may
	// reach s2 first from its own server.
	want := map[string][]domain.UserTyping{
		"b1": {{UserID: "b1", UserName: "Bob", IsTyping: true}, {UserID: "b1", IsTyping: false}},
		"s3": {{UserID: "s3", IsTyping: true}},
	}
	for _, c := range receivers {
		got := map[string][]domain.UserTyping{}
		for _, p := range typing(c) {
			got[p.UserID] = append(got[p.UserID], p)
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%s got %+v, want %+v", c.id, got, want)
		}
	}
	if got := typing(b1); len(got) != 1 || got[0].UserID != "s3" {
		t.Errorf("the sender got its own typing: %+v", got)
	}
	settle(t, a, x1)
	settle(t, b, s3)
	for _, c := range []*client{x1, s3} {
		if got := typing(c); len(got) != 0 {
			t.Errorf("%s (not in the room) got %+v", c.id, got)
		}
	}
	// Volatile: never in the log.
	page, err := a.Store.ReadRoom(context.Background(), chat, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range page.Events {
		if d.Type == domain.EventUserTyping {
			t.Errorf("user-typing was logged: %+v", d)
		}
	}
}
