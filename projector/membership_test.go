package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

func TestMembershipProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := eventstore.New(pool, nil, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	publish := func(typ string, payload string, rooms ...string) {
		t.Helper()
		rs := make([]domain.Room, len(rooms))
		for i, r := range rooms {
			rs[i] = domain.MustRoom(r)
		}
		if err := domain.ValidatePublish(typ, rs, json.RawMessage(payload)); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if _, err := s.Append(ctx, eventstore.AppendRequest{Type: typ, Rooms: rs, Payload: json.RawMessage(payload), Producer: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	publish("new-purchase-request", `{"_id":"r1","buyerId":"b1","title":"lamp"}`, "sellers")
	publish("new-offer", `{"requestId":"r1","sellerId":"s1","offer":{"price":10}}`, "buyer-b1")
	publish("participants-added", `{"chatId":"c1","addedUserIds":["u1","u2","u3"]}`, "chat-c1")
	publish("participant-removed", `{"chatId":"c1","removedUserId":"u2"}`, "chat-c1")
	publish("room-member-added", `{"userId":"u9"}`, "template-checkout-t1", "request-r1")
	publish("room-member-removed", `{"userId":"u9"}`, "request-r1")

	start := func(name string) *projector.Runner {
		r, err := projector.New(projector.Config{
			Name: name, Source: s, Checkpoints: s, HandlerSavesCheckpoint: true, Start: projector.FromBeginning,
			Handler: projector.Membership{Store: s, Name: name}, PollInterval: 10 * time.Millisecond, BatchSize: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		return r
	}
	want := map[string][]string{
		"request-r1":           {"b1", "s1"},
		"chat-c1":              {"u1", "u3"},
		"template-checkout-t1": {"u9"},
	}
	check := func() error {
		for room, users := range want {
			got, err := s.Members(ctx, domain.Room(room))
			if err != nil {
				return err
			}
			if !slices.Equal(got, users) {
				return fmt.Errorf("%s members = %v, want %v", room, got, users)
			}
		}
		return nil
	}
	r := start(projector.MembershipName)
	checkFor(t, 20*time.Second, 10*time.Millisecond, check)
	pos := r.Position()
	saved, ok, err := s.LoadCheckpoint(ctx, projector.MembershipName)
	if err != nil || !ok || saved != pos {
		t.Fatalf("checkpoint %v (%v, %v), runner at %v", saved, ok, err, pos)
	}
	if ok, err := s.IsMember(ctx, "chat-c1", "u2"); err != nil || ok {
		t.Fatalf("removed participant still a member: %v %v", ok, err)
	}
	// Restarting from the checkpoint applies nothing twice; new events
	// still apply.
	r.Stop()
	publish("participants-added", `{"chatId":"c1","addedUserIds":["u2"]}`, "chat-c1")
	start(projector.MembershipName)
	want["chat-c1"] = []string{"u1", "u2", "u3"}
	checkFor(t, 20*time.Second, 10*time.Millisecond, check)
}
