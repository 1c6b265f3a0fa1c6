package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

func FuzzParseRoom(f *testing.F) {
	for _, s := range []string{
		"user-1", "sellers", "sellers-1", "template-checkout-x", "template-checkout-",
		"chat-a:b.c_d-e", "global", "", "user-", "user-\xff", strings.Repeat("a", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := domain.ParseRoom(s)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeInvalid {
				t.Fatalf("ParseRoom(%q) error code %q", s, domain.ErrorCode(err))
			}
			if domain.Room(s).Kind() != "" || domain.Room(s).ID() != "" {
				t.Fatalf("invalid room %q has a kind or id", s)
			}
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRoom(%q) = %q", s, r)
		}
		back, err := domain.ParseRoom(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip of %q: %q, %v", r, back, err)
		}
		k := r.Kind()
		if k == "" {
			t.Fatalf("valid room %q has no kind", r)
		}
		if k.HasID() != (r.ID() != "") {
			t.Fatalf("room %q: HasID %v but ID %q", r, k.HasID(), r.ID())
		}
		if k.HasID() && string(k)+"-"+r.ID() != s {
			t.Fatalf("room %q: kind %q + id %q does not rebuild it", r, k, r.ID())
		}
		if r.Personal() && r.Shared() {
			t.Fatalf("room %q is both personal and shared", r)
		}
	})
}

func FuzzValidatePublish(f *testing.F) {
	f.Add("new-offer", "buyer-b1", `{"requestId":"r1","offer":{},"sellerId":"s1"}`)
	f.Add("new-message", "chat-c1", `{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"hi","senderId":"u1","createdAt":"2024-05-01T12:00:00Z"}}`)
	f.Add("participants-added", "chat-c1", `{"chatId":"c1","addedUserIds":["u1",2,null]}`)
	f.Add("x-thing", "global", `{"a":[1,{"b":"\ud800"}]}`)
	f.Add("user-typing", "chat-c1", `{"userId":"u1","isTyping":true}`)
	f.Add("room-member-added", "request-r1", `{"userId":"u1","USERID":"u2"}`)
	f.Add("payment-created", "global", `{"amount":"1e999999","a":1e999999}`)
	f.Add("", "", ``)
	f.Fuzz(func(t *testing.T, name, rooms, payload string) {
		var rs []domain.Room
		if rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				rs = append(rs, domain.Room(r))
			}
		}
		err := domain.ValidatePublish(name, rs, json.RawMessage(payload))
		// Membership is derived from anything without panicking.
		changes := domain.ImpliedMembership(name, rs, json.RawMessage(payload))
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || len(de.Fields) == 0 {
				t.Fatalf("ValidatePublish error %#v is not an invalid *domain.Error with fields", err)
			}
			if len(de.Fields) > domain.MaxFieldErrors {
				t.Fatalf("%d field errors", len(de.Fields))
			}
			return
		}
		// Whatever passes is a durable event, valid JSON, and its implied
		// membership names valid shared rooms and users.
		spec, ok := domain.Lookup(name)
		if !ok || !spec.Durable {
			t.Fatalf("accepted %q, which is unknown or volatile", name)
		}
		if !json.Valid([]byte(payload)) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		for _, c := range changes {
			if !c.Room.Shared() || domain.ValidID(c.UserID) != nil {
				t.Fatalf("implied membership %+v is invalid", c)
			}
		}
	})
}
