package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// refDelivery is how encodeDelivery's frames were built before they were
// written by hand: encoding/json for the event name and the meta (HTML
// escaping on), the payload trimmed, the offset appended. The frames must
// keep these bytes exactly.
func refDelivery(d domain.Delivery) (plain, full []byte, err error) {
	name, err := json.Marshal(d.Type)
	if err != nil {
		return nil, nil, err
	}
	meta, err := json.Marshal(Meta{Room: d.Room, Seq: d.Seq, ID: d.ID, At: d.OccurredAt.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, nil, err
	}
	payload := bytes.TrimSpace(d.Payload)
	if !json.Valid(payload) {
		return nil, nil, fmt.Errorf("invalid payload")
	}
	plain = fmt.Appendf(nil, "2[%s,%s,%s]", name, payload, meta)
	full = fmt.Appendf(nil, "2[%s,%s,%s,%q]", name, payload, meta, eventstore.FormatPosition(d.Position))
	return plain, full, nil
}

func TestEncodeDeliveryMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	paris := time.FixedZone("CET", 3600)
	d := func(typ, room, id, payload string, at time.Time) domain.Delivery {
		return domain.Delivery{
			Event: domain.Event{ID: id, Type: typ, Payload: json.RawMessage(payload), OccurredAt: at},
			Room:  domain.Room(room), Seq: 42, Position: domain.Position{Txid: 812, ID: 77},
		}
	}
	tests := []struct {
		name    string
		d       domain.Delivery
		wantErr bool
	}{
		{"Plain", d("new-offer", "buyer-b1", "0b5f6c1e-8f5e-4a57-9a55-3d3f3e0e4a11", `{"requestId":"r1"}`, at), false},
		{"HTMLAndQuotes", d("a<b>&\"c\\", "r<o>&m", "i\"d<&>", `"<b>&amp;</b>"`, at), false},
		{"ControlAndUnicode", d("t\u2028y\x01p\x7fe", "ro\u00e9m", "pro\xffducer\t", `{"u":"é \u2028"}`, at), false},
		{"PayloadSpaces", d("x", "r", "i", " \n{ \"a\" : 1 }\t", at), false},
		{"Times", d("x", "r", "i", `1`, time.Date(2025, 1, 2, 3, 4, 5, 1, paris)), false},
		{"ZeroTime", d("x", "r", "i", `1`, time.Time{}), false},
		{"LargeYear", d("x", "r", "i", `1`, time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"Empty", d("", "", "", `null`, at), false},
		{"InvalidPayload", d("x", "r", "i", `{"broken"`, at), true},
		{"EmptyPayload", d("x", "r", "i", ``, at), true},
		{"MaxPosition", domain.Delivery{Event: domain.Event{Type: "x", Payload: json.RawMessage(`1`)}, Position: domain.Position{Txid: 1<<64 - 1, ID: 1<<63 - 1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plain, full, refErr := refDelivery(tt.d)
			f, err := encodeDelivery(tt.d)
			if (err != nil) != tt.wantErr || (refErr != nil) != tt.wantErr {
				t.Fatalf("errors: encodeDelivery %v, reference %v; want error %v", err, refErr, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !bytes.Equal(f.text, full) {
				t.Errorf("frame\n got %s\nwant %s", f.text, full)
			}
			if f.plain == nil || !bytes.Equal(f.plain.text, plain) {
				t.Errorf("plain frame %v, want %s", f.plain, plain)
			}
			if !f.offset || f.pos != tt.d.Position || f.plain.offset {
				t.Errorf("frame offset %v at %v, plain offset %v", f.offset, f.pos, f.plain.offset)
			}
			if cap(f.text) != len(f.text) || cap(f.plain.text) != len(f.plain.text) {
				t.Errorf("a frame can grow into shared memory")
			}
			h, err := encodeHistory(tt.d)
			if err != nil || !bytes.Equal(h.text, plain) || h.offset {
				t.Errorf("history frame %s, %v; want %s", h.text, err, plain)
			}
		})
	}
}

// BenchmarkEncodeDelivery encodes a logged event with a ~200-byte payload,
// as the fan-out does once per event and a recovery once per replayed
// event.
func BenchmarkEncodeDelivery(b *testing.B) {
	d := domain.Delivery{
		Event: domain.Event{ID: "0b5f6c1e-8f5e-4a57-9a55-3d3f3e0e4a11", Type: "x-bench", Producer: "bench",
			Payload:    json.RawMessage(fmt.Sprintf(`{"i":1,"pad":"%s"}`, strings.Repeat("x", 160))),
			OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)},
		Room: "user-bench", Seq: 42, Position: domain.Position{Txid: 812345, ID: 77123},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeDelivery(d); err != nil {
			b.Fatal(err)
		}
	}
}
