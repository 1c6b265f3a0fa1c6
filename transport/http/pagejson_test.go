package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// refRoomPage is how roomPage was answered before appendRoomPage: by
// encoding/json. The hand-written encoder must produce its bytes exactly.
type refRoomPage struct {
	Room   domain.Room `json:"room"`
	Events []eventJSON `json:"events"`
	Head   int64       `json:"head"`
	More   bool        `json:"more"`
	Reset  bool        `json:"reset"`
}

func refPage(p roomPage) refRoomPage {
	return refRoomPage{Room: p.Room, Events: toEventsJSON(p.Events), Head: p.Head, More: p.More, Reset: p.Reset}
}

func delivery(id, room, typ, producer, payload string, seq int64, at time.Time) domain.Delivery {
	var pl json.RawMessage
	if payload != "<nil>" {
		pl = json.RawMessage(payload)
	}
	return domain.Delivery{
		Event: domain.Event{ID: id, Type: typ, Payload: pl, Producer: producer, OccurredAt: at},
		Room:  domain.Room(room), Seq: seq,
	}
}

func TestPageJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	paris := time.FixedZone("CET", 3600)
	id := "0b5f6c1e-8f5e-4a57-9a55-3d3f3e0e4a11"
	cases := []struct {
		name    string
		events  []domain.Delivery
		wantErr bool
	}{
		{name: "NoEvents"},
		{name: "Plain", events: []domain.Delivery{
			delivery(id, "user-u1", "unread-count-update", "market", `{"unreadCount":2}`, 2, at),
			delivery(id, "user-u1", "x-bench", "market", `{"t":1,"pad":"xxxx"}`, 3, at.Add(time.Second)),
		}},
		{name: "PayloadShapes", events: []domain.Delivery{
			delivery(id, "chat-c1", "x", "p", `null`, 1, at),
			delivery(id, "chat-c1", "x", "p", `<nil>`, 2, at),
			delivery(id, "chat-c1", "x", "p", `[1,"a",true,{"b":null}]`, 3, at),
			delivery(id, "chat-c1", "x", "p", `"<b>&amp;</b>"`, 4, at),
			delivery(id, "chat-c1", "x", "p", `{"s":"a \" b \\","t":"\\\\"}`, 5, at),
			delivery(id, "chat-c1", "x", "p", `{"u":"é \u2028 \u00e9 `+"\u2028"+`"}`, 6, at),
			delivery(id, "chat-c1", "x", "p", `-1.5e3`, 7, at),
		}},
		{name: "PayloadNotCompact", events: []domain.Delivery{
			delivery(id, "chat-c1", "x", "p", `{ "a" : [1, 2],`+"\n\t"+`"b":"x y" }`, 1, at),
			delivery(id, "chat-c1", "x", "p", ` 1 `, 2, at),
			delivery(id, "chat-c1", "x", "p", `{"s":"q\" ","k": 1}`, 3, at),
			delivery(id, "chat-c1", "x", "p", `{"s":"q\\" ,"k":1}`, 4, at),
			delivery(id, "chat-c1", "x", "p", `{"s":"q\" "}`, 5, at),
			delivery(id, "chat-c1", "x", "p", `{"s":"q\\\\" ,"k":1}`, 6, at),
		}},
		{name: "Strings", events: []domain.Delivery{
			delivery("a\"b\\c", "r<o>&m", "t\u2028y\x01p\x7fe", "pro\xffducer\té", `1`, 1, at),
		}},
		{name: "Times", events: []domain.Delivery{
			delivery(id, "r", "t", "p", `1`, 1, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
			delivery(id, "r", "t", "p", `1`, 2, time.Date(2025, 1, 2, 3, 4, 5, 1, paris)),
			delivery(id, "r", "t", "p", `1`, 3, time.Time{}),
			delivery(id, "r", "t", "p", `1`, 4, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)),
		}},
		{name: "YearOutOfRange", events: []domain.Delivery{
			delivery(id, "r", "t", "p", `1`, 1, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)),
		}, wantErr: true},
		{name: "EmptyPayload", events: []domain.Delivery{
			delivery(id, "r", "t", "p", ``, 1, at),
		}, wantErr: true},
		{name: "InvalidNonCompactPayload", events: []domain.Delivery{
			delivery(id, "r", "t", "p", `{ "a" }`, 1, at),
		}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, p := range []roomPage{
				{Room: "user-u1", Events: tc.events, Head: 7, More: true},
				{Room: "chat-c1", Events: tc.events, Head: 0, Reset: true},
			} {
				want, wantErr := marshal(refPage(p))
				got, err := appendRoomPage([]byte("prefix"), p)
				if (err != nil) != tc.wantErr || (wantErr != nil) != tc.wantErr {
					t.Fatalf("errors: appendRoomPage %v, encoding/json %v; want error %v", err, wantErr, tc.wantErr)
				}
				if tc.wantErr {
					continue
				}
				if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
					t.Fatalf("appendRoomPage:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// TestCatchUpJSONMatchesEncodingJSON checks the multi-room answer against
// the struct encoding/json used to marshal.
func TestCatchUpJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	p1 := roomPage{Room: "chat-c1", Events: []domain.Delivery{delivery("i1", "chat-c1", "t", "p", `{"a":1}`, 1, at)}, Head: 3, More: true}
	p2 := roomPage{Room: "global", Head: 0, Reset: true}
	e := roomError{Room: "nope", Error: toBody(errRoomNotFound).Error}
	for _, entries := range [][]catchUpEntry{
		{},
		{{page: &p1}},
		{{page: &p1}, {err: &e}, {page: &p2}},
		{{err: &e}},
	} {
		ref := struct {
			Rooms []any `json:"rooms"`
		}{Rooms: []any{}}
		for _, en := range entries {
			if en.page != nil {
				ref.Rooms = append(ref.Rooms, refPage(*en.page))
			} else {
				ref.Rooms = append(ref.Rooms, *en.err)
			}
		}
		want, err := marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendCatchUp(nil, entries)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendCatchUp:\n got %s\nwant %s", got, want)
		}
	}
}

// TestPayloadJSONRandom compares appendPayload with encoding/json on
// random JSON text with random whitespace, quotes and backslashes.
func TestPayloadJSONRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	atoms := []string{`"a b"`, `"\""`, `"\\"`, `"\\\""`, `"x\\\\"`, `1`, `-2.5`, `true`, `null`, `"é\u2028"`, `""`}
	ws := []string{"", "", "", " ", "\n", "\t", "\r\n "}
	var value func(depth int) string
	value = func(depth int) string {
		w := func() string { return ws[r.IntN(len(ws))] }
		if depth > 3 || r.IntN(3) == 0 {
			return w() + atoms[r.IntN(len(atoms))] + w()
		}
		n := r.IntN(4)
		parts := make([]string, n)
		if r.IntN(2) == 0 {
			for i := range parts {
				parts[i] = value(depth + 1)
			}
			return w() + "[" + strings.Join(parts, ",") + "]" + w()
		}
		for i := range parts {
			parts[i] = fmt.Sprintf(`%s"k%d"%s:%s`, w(), i, w(), value(depth+1))
		}
		return w() + "{" + strings.Join(parts, ",") + "}" + w()
	}
	for range 2000 {
		v := value(0)
		if !json.Valid([]byte(v)) {
			t.Fatalf("generated invalid JSON %q", v)
		}
		want, err := marshal(json.RawMessage(v))
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPayload(nil, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendPayload(%q) = %q, want %q", v, got, want)
		}
	}
}

// BenchmarkAppendRoomPage encodes a page of 1,000 events of ~200-byte
// payloads, without the database or HTTP.
func BenchmarkAppendRoomPage(b *testing.B) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	p := roomPage{Room: "user-bench", Head: 1000, More: false}
	for i := range 1000 {
		p.Events = append(p.Events, delivery("0b5f6c1e-8f5e-4a57-9a55-3d3f3e0e4a11", "user-bench", "x-bench", "bench",
			fmt.Sprintf(`{"t":%d,"pad":"%s"}`, i, strings.Repeat("x", 160)), int64(i+1), at))
	}
	b.Run("Hand", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, pageSize(p))
		for b.Loop() {
			var err error
			if buf, err = appendRoomPage(buf[:0], p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EncodingJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshal(refPage(p)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
