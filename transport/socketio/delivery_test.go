package socketio_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// samplePayload builds a valid payload for spec from its field list, with
// an extra field "_n" (unknown fields are allowed) that tells deliveries
// apart.
func samplePayload(t *testing.T, spec domain.EventSpec, n int) json.RawMessage {
	t.Helper()
	obj := sampleObject(spec.Fields)
	obj["_n"] = n
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleObject(fields []domain.FieldSpec) map[string]any {
	obj := map[string]any{}
	for _, f := range fields {
		obj[f.Name] = sampleValue(f)
	}
	return obj
}

func sampleValue(f domain.FieldSpec) any {
	switch f.Type {
	case domain.FieldID:
		return "gen-1"
	case domain.FieldString:
		if len(f.Enum) > 0 {
			return f.Enum[0]
		}
		return "text"
	case domain.FieldTime:
		return "2026-01-02T03:04:05.000Z"
	case domain.FieldNumber:
		return 1.5
	case domain.FieldCount:
		return 3
	case domain.FieldAmount:
		return "12.50"
	case domain.FieldStringOrNumber:
		return "t-1"
	case domain.FieldBool:
		return true
	case domain.FieldObject:
		return sampleObject(f.Fields)
	case domain.FieldArray:
		if f.Elem != "" {
			return []any{sampleValue(domain.FieldSpec{Type: f.Elem})}
		}
		return []any{"a"}
	default:
		return map[string]any{"k": "v"}
	}
}

// TestCatalogueDelivery appends every client-visible event of the catalogue
// to every room kind it allows and checks that each is delivered as
// (payload, meta) to exactly the sockets in its room, over WebSocket and
// over polling upgraded to WebSocket.
func TestCatalogueDelivery(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Membership: true})
	srv.grant(t, "request-r1", "b1", "s1")
	srv.grant(t, "chat-c1", "b1", "s1")
	srv.grant(t, "template-checkout-t1", "b1")
	node := startNode(t)

	b1 := node.connect("b1", srv.URL, wsOpts(token(t, "b1", domain.RoleBuyer)),
		emitSpec{Event: "join-user-room", Args: []any{"b1"}},
		emitSpec{Event: "join-buyer-room", Args: []any{"b1"}})
	s1 := node.connect("s1", srv.URL, pollOpts(token(t, "s1", domain.RoleSeller)),
		emitSpec{Event: "join-user-room", Args: []any{"s1"}},
		emitSpec{Event: "join-seller-room", Args: []any{"s1"}})
	x1 := node.connect("x1", srv.URL, wsOpts(token(t, "x1")))
	adm := node.connect("adm", srv.URL, pollOpts(token(t, "adm", domain.RoleAdmin)))
	all := []*client{b1, s1, x1, adm}
	for _, c := range all {
		c.connected(t)
	}
	b1.mustOK(t, "join-request-room", "r1")
	b1.mustOK(t, "join-chat-room", "c1")
	b1.mustOK(t, "subscribe", map[string]any{"room": "template-checkout-t1"})
	s1.mustOK(t, "join-request-room", "r1")
	s1.mustOK(t, "join-chat-room", "c1")
	node.wait(t, 20*time.Second, "s1 upgrade", func(m jsMsg) bool { return m.T == "upgrade" && m.ID == "s1" })
	// The WebSocket clients' frames go through the Hub's own writer; the
	// upgraded ones through the library's transports (wsraw.go).
	if raw, lib := srv.Hub.TransportKinds(); raw != 2 || lib != 2 {
		t.Errorf("transports: %d raw, %d library; want 2 and 2", raw, lib)
	}

	roomOf := map[domain.RoomKind]domain.Room{
		domain.KindUser: "user-b1", domain.KindBuyer: "buyer-b1", domain.KindBuyers: domain.RoomBuyers,
		domain.KindSeller: "seller-s1", domain.KindSellers: domain.RoomSellers, domain.KindRequest: "request-r1",
		domain.KindChat: "chat-c1", domain.KindTemplateCheckout: "template-checkout-t1", domain.KindGlobal: domain.RoomGlobal,
	}
	recipients := map[domain.Room][]*client{
		"user-b1": {b1}, "buyer-b1": {b1}, domain.RoomBuyers: {b1},
		"seller-s1": {s1}, domain.RoomSellers: {s1},
		"request-r1": {b1, s1}, "chat-c1": {b1, s1}, "template-checkout-t1": {b1},
		domain.RoomGlobal: all,
	}

	type sent struct {
		event   string
		payload json.RawMessage
		res     eventstore.AppendResult
		rooms   []domain.Room
	}
	var sends []sent
	before := srv.Hub.Stats().FramesEncoded
	deliveries := 0
	n := 0
	publish := func(event string, payload json.RawMessage, rooms ...domain.Room) {
		res := appendEvent(t, srv.Store, event, string(payload), rooms...)
		sends = append(sends, sent{event, payload, res, rooms})
		deliveries += len(rooms)
	}
	covered := 0
	for _, spec := range domain.Catalogue() {
		if spec.Internal || !spec.Durable {
			continue
		}
		covered++
		for _, k := range spec.RoomKinds {
			n++
			publish(spec.Name, samplePayload(t, spec, n), roomOf[k])
		}
		if len(spec.RoomKinds) > 1 {
			// One event for all its rooms: one delivery per room.
			n++
			rooms := make([]domain.Room, 0, len(spec.RoomKinds))
			for _, k := range spec.RoomKinds {
				rooms = append(rooms, roomOf[k])
			}
			publish(spec.Name, samplePayload(t, spec, n), rooms...)
		}
	}
	n++
	publish("x-test-extension", json.RawMessage(fmt.Sprintf(`{"_n":%d,"anything":[1,{"a":null}]}`, n)), "user-b1", domain.RoomGlobal)
	if covered < 30 {
		t.Fatalf("only %d catalogue events are client-visible; the catalogue changed?", covered)
	}
	// Every socket receives its events in tail order, so once each has
	// the final marker it has everything.
	marker := appendEvent(t, srv.Store, "x-done", `{}`, domain.RoomGlobal)
	deliveries++
	for _, c := range all {
		waitEvent(t, c, "x-done", domain.RoomGlobal, marker.Deliveries[0].Seq)
	}

	type key struct {
		client string
		n      int
		room   domain.Room
	}
	got := map[key]jsMsg{}
	for _, c := range all {
		for _, m := range c.events() {
			if m.Event == "x-done" {
				continue
			}
			var p struct {
				N int `json:"_n"`
			}
			if err := json.Unmarshal(m.Args[0], &p); err != nil || p.N == 0 {
				t.Errorf("%s got unexpected %s %s", c.id, m.Event, m.Args)
				continue
			}
			k := key{c.id, p.N, meta(t, m).Room}
			if _, dup := got[k]; dup {
				t.Errorf("%s got %s #%d in %s twice", c.id, m.Event, p.N, k.room)
			}
			got[k] = m
		}
	}
	want := 0
	for _, s := range sends {
		var p struct {
			N int `json:"_n"`
		}
		_ = json.Unmarshal(s.payload, &p)
		for i, room := range s.rooms {
			for _, c := range recipients[room] {
				want++
				m, ok := got[key{c.id, p.N, room}]
				if !ok {
					t.Errorf("%s did not get %s #%d in %s", c.id, s.event, p.N, room)
					continue
				}
				delete(got, key{c.id, p.N, room})
				if m.Event != s.event {
					t.Errorf("%s: event %s, want %s", c.id, m.Event, s.event)
				}
				if !sameJSON(t, m.Args[0], s.payload) {
					t.Errorf("%s %s: payload %s, want %s", c.id, s.event, m.Args[0], s.payload)
				}
				md := meta(t, m)
				at, err := time.Parse(time.RFC3339Nano, md.At)
				if md.Seq != s.res.Deliveries[i].Seq || md.ID != s.res.EventID || err != nil || !at.Equal(s.res.At) {
					t.Errorf("%s %s: meta %+v, want room %s seq %d id %s at %s", c.id, s.event, md, room, s.res.Deliveries[i].Seq, s.res.EventID, s.res.At)
				}
				// payload, meta and the recovery offset "txid:id", last.
				var off string
				if len(m.Args) != 3 || json.Unmarshal(m.Args[2], &off) != nil {
					t.Errorf("%s %s: %d arguments, want payload, meta and offset", c.id, s.event, len(m.Args))
				} else if _, err := eventstore.ParsePosition(off); err != nil {
					t.Errorf("%s %s: offset: %v", c.id, s.event, err)
				}
			}
		}
	}
	for k, m := range got {
		t.Errorf("%s got %s #%d in %s, which it is not in", k.client, m.Event, k.n, k.room)
	}
	t.Logf("%d catalogue events, %d appends, %d room deliveries, %d socket deliveries checked", covered, len(sends), deliveries, want)
	if enc := srv.Hub.Stats().FramesEncoded - before; enc != uint64(deliveries) {
		t.Errorf("encoded %d frames for %d room deliveries; each must be encoded once whatever its recipients", enc, deliveries)
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
