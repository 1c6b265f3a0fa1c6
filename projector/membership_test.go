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

// membershipLog starts a store and returns it with a function that
// publishes a validated event, after publishing the membership history
// the membership tests share.
func membershipLog(t *testing.T) (*eventstore.Store, func(typ, payload string, rooms ...string)) {
	t.Helper()
	ctx := context.Background()
	s := eventstore.New(eventstoretest.New(t), nil, nil)
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
	return s, publish
}

func TestMembershipProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, publish := membershipLog(t)

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

func TestMembershipView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, publish := membershipLog(t)
	view := projector.MembershipView{Store: s}
	type membership struct {
		room, user string
		member     bool
	}
	check := func(t *testing.T, cases []membership) {
		t.Helper()
		for _, c := range cases {
			got, err := view.IsMember(ctx, domain.Room(c.room), c.user)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.member {
				t.Errorf("IsMember(%s, %s) = %v, want %v", c.room, c.user, got, c.member)
			}
		}
	}
	history := []membership{
		{"request-r1", "b1", true}, {"request-r1", "s1", true}, {"request-r1", "u9", false},
		{"chat-c1", "u1", true}, {"chat-c1", "u2", false}, {"chat-c1", "u3", true}, {"chat-c1", "b1", false},
		{"template-checkout-t1", "u9", true}, {"template-checkout-t2", "u9", false},
	}

	// No projection has run: the view reads it all from the log.
	t.Run("BeforeTheProjection", func(t *testing.T) { check(t, history) })
	got, err := view.MemberRooms(ctx, "u9", []domain.Room{"request-r1", "template-checkout-t1", "template-checkout-t1"})
	if err != nil || !slices.Equal(got, []domain.Room{"template-checkout-t1"}) {
		t.Fatalf("MemberRooms(u9) = %v, %v", got, err)
	}

	// The projection catches up: the model alone gives the same answers.
	r, err := projector.New(projector.Config{
		Name: projector.MembershipName, Source: s, Checkpoints: s, HandlerSavesCheckpoint: true, Start: projector.FromBeginning,
		Handler: projector.Membership{Store: s}, PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if ok, err := s.IsMember(ctx, "template-checkout-t1", "u9"); err != nil || !ok {
			return fmt.Errorf("model not caught up (%v)", err)
		}
		return nil
	})
	r.Stop()
	t.Run("AfterTheProjection", func(t *testing.T) { check(t, history) })

	// With the projection stopped, changes count as soon as they commit,
	// in log order, while the model still says otherwise.
	publish("participant-removed", `{"chatId":"c1","removedUserId":"u1"}`, "chat-c1")
	publish("participants-added", `{"chatId":"c1","addedUserIds":["u2"]}`, "chat-c1")
	publish("participant-removed", `{"chatId":"c1","removedUserId":"u2"}`, "chat-c1")
	publish("participants-added", `{"chatId":"c1","addedUserIds":["u2"]}`, "chat-c1")
	t.Run("AheadOfTheModel", func(t *testing.T) {
		check(t, []membership{{"chat-c1", "u1", false}, {"chat-c1", "u2", true}, {"chat-c1", "u3", true}})
		if ok, err := s.IsMember(ctx, "chat-c1", "u1"); err != nil || !ok {
			t.Fatalf("the stopped model already removed u1 (%v, %v): the test shows nothing", ok, err)
		}
	})
}

type truncatedSnapshot struct{}

func (truncatedSnapshot) MembershipSnapshot(context.Context, string, string, []domain.Room, []string, int) (eventstore.MembershipSnapshot, error) {
	return eventstore.MembershipSnapshot{Members: []domain.Room{"chat-c1"}, Truncated: true}, nil
}

// A view that cannot see every pending change refuses to answer rather
// than answer from a partial picture.
func TestMembershipViewTooFarBehind(t *testing.T) {
	t.Parallel()
	_, err := projector.MembershipView{Store: truncatedSnapshot{}}.IsMember(context.Background(), "chat-c1", "u1")
	if domain.ErrorCode(err) != domain.CodeUnavailable {
		t.Fatalf("err = %v, want CodeUnavailable", err)
	}
}
