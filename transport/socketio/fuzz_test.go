package socketio

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// FuzzEventArgs feeds the argument decoders of every client event with
// what the library hands over after JSON-decoding a packet's arguments
// (strings, float64 numbers, maps, slices, bools, nil). No input may
// panic, and whatever a decoder accepts must be well formed: ids are
// strings or integral numbers, rooms parse back to themselves, after is -1
// or a non-negative integer.
func FuzzEventArgs(f *testing.F) {
	for _, s := range []string{
		`["u1"]`, `[42]`, `[4.5]`, `[-0]`, `[1e300]`, `[null]`, `[]`, `[{"room":"user-u1"}]`,
		`[{"room":"user-u1","after":0}]`, `[{"room":"chat-c1","after":-1}]`, `[{"room":"sellers","after":9007199254740993}]`,
		`[{"chatId":"c1","userId":"u1","userName":"Ann"}]`, `[{"chatId":7,"userId":1e3}]`, `[{"room":["user-u1"]}]`,
		`[{"room":"user-` + "\u0000" + `"}]`, `["` + "\xff" + `"]`, `[[[[[]]]]]`, `[true,false]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var args []any
		if json.Unmarshal(raw, &args) != nil {
			return
		}
		if id, err := idArg(args, 0); err == nil {
			switch v := args[0].(type) {
			case string:
				if id != v {
					t.Fatalf("idArg(%q) = %q", v, id)
				}
			case float64:
				if v != math.Trunc(v) || strconv.FormatInt(int64(v), 10) != id {
					t.Fatalf("idArg(%v) = %q", v, id)
				}
			default:
				t.Fatalf("idArg accepted %T", v)
			}
			// The room constructors decide what the id may be; they
			// must not panic on anything idArg lets through.
			for _, mk := range []func(string) (domain.Room, error){domain.UserRoom, domain.ChatRoom, domain.SellerRoom, domain.BuyerRoom, domain.RequestRoom} {
				if r, err := mk(id); err == nil {
					if back, err := domain.ParseRoom(string(r)); err != nil || back != r {
						t.Fatalf("room %q from id %q does not parse back: %q %v", r, id, back, err)
					}
				}
			}
		}
		obj, err := objectArg(args, 0)
		if err != nil {
			return
		}
		if r, err := roomField(obj); err == nil {
			if back, err := domain.ParseRoom(string(r)); err != nil || back != r {
				t.Fatalf("roomField %q does not parse back: %q %v", r, back, err)
			}
		}
		if after, err := afterField(obj); err == nil && after < -1 {
			t.Fatalf("afterField = %d", after)
		}
		for _, key := range []string{"chatId", "userId"} {
			if id, err := idField(obj, key); err == nil {
				if domain.ValidID(id) != nil {
					t.Fatalf("idField(%s) accepted invalid id %q", key, id)
				}
			}
		}
		_ = ackResponse(invalidArg("x"))
	})
}
