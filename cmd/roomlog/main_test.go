package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/transport/auth"
)

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, dbURL, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	vars := map[string]string{"DATABASE_URL": dbURL, "ROOMLOG_JWT_SECRET": strings.Repeat("k", 32)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
	return result{code, out.String(), errb.String()}
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestCLI(t *testing.T) {
	t.Parallel()

	t.Run("Usage", func(t *testing.T) {
		t.Parallel()
		if r := runCLI(t, "", ""); r.code != 2 || !strings.Contains(r.stderr, "usage") {
			t.Fatalf("%+v", r)
		}
		if r := runCLI(t, "", "", "frobnicate"); r.code != 2 {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("MigrateStatusDownUp", func(t *testing.T) {
		t.Parallel()
		u := eventstoretest.NewURL(t)
		r := runCLI(t, u, "", "migrate", "status")
		if r.code != 0 || !strings.Contains(r.stdout, "(current)") {
			t.Fatalf("status: %+v", r)
		}
		if r := runCLI(t, u, "", "migrate", "down"); r.code != 0 || !strings.Contains(r.stdout, "schema version 0 of") {
			t.Fatalf("down: %+v", r)
		}
		if r := runCLI(t, u, "", "migrate", "up"); r.code != 0 || !strings.Contains(r.stdout, "(current)") {
			t.Fatalf("up: %+v", r)
		}
		if r := runCLI(t, u, "", "migrate", "sideways"); r.code != 2 {
			t.Fatalf("bad direction: %+v", r)
		}
	})

	t.Run("Token", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, "", "", "token", "-user", "u1", "-roles", "buyer,seller")
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		v, err := auth.NewVerifier(auth.Config{HSSecret: []byte(strings.Repeat("k", 32))})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(strings.TrimSpace(r.stdout), time.Now())
		if err != nil || p.UserID != "u1" || len(p.Roles) != 2 {
			t.Fatalf("minted token verifies as %+v, %v", p, err)
		}
		if r := runCLI(t, "", "", "token"); r.code != 2 {
			t.Fatalf("missing -user: %+v", r)
		}
	})

	t.Run("PublishTailVerify", func(t *testing.T) {
		t.Parallel()
		u := eventstoretest.NewURL(t)
		r := runCLI(t, u, "", "publish", "-event", "new-message", "-room", "chat-1",
			"-payload", `{"chatId":"1","senderId":"u1","message":{"_id":"m1","content":"hi","senderId":"u1","createdAt":"2026-01-01T00:00:00Z"}}`, "-id", "k1")
		if r.code != 0 {
			t.Fatalf("publish: %+v", r)
		}
		var out publishOutput
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Deliveries) != 1 || out.Deliveries[0].Seq != 1 {
			t.Fatalf("publish output %q: %v", r.stdout, err)
		}
		ndjson := `{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":3}}
{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":{"requestId":"r1","reason":"changed mind"}}
`
		r = runCLI(t, u, ndjson, "publish", "-producer", "importer")
		if r.code != 0 || len(lines(r.stdout)) != 2 {
			t.Fatalf("publish ndjson: %+v", r)
		}
		// Invalid events are rejected with field details, nothing written.
		r = runCLI(t, u, "", "publish", "-event", "new-message", "-room", "user-1", "-payload", `{}`)
		if r.code != 1 || !strings.Contains(r.stderr, "payload.chatId") {
			t.Fatalf("invalid publish: %+v", r)
		}
		r = runCLI(t, u, "", "publish", "-event", "user-typing", "-room", "chat-1", "-payload", `{"userId":"u1","isTyping":true}`)
		if r.code != 1 {
			t.Fatalf("volatile publish accepted: %+v", r)
		}

		r = runCLI(t, u, "", "tail", "-room", "chat-1", "-follow=false")
		if r.code != 0 || len(lines(r.stdout)) != 1 || !strings.Contains(r.stdout, `"event":"new-message"`) {
			t.Fatalf("tail room: %+v", r)
		}
		r = runCLI(t, u, "", "tail", "-from-beginning", "-follow=false")
		if r.code != 0 || len(lines(r.stdout)) != 4 {
			t.Fatalf("tail all: %+v", r)
		}
		var ev eventJSON
		if err := json.Unmarshal([]byte(lines(r.stdout)[2]), &ev); err != nil || ev.Producer != "importer" || ev.Room != "user-b1" {
			t.Fatalf("tail line: %+v %v", ev, err)
		}

		r = runCLI(t, u, "", "verify", "-all")
		if r.code != 0 || !strings.Contains(r.stdout, "4 rooms, 4 events checked, 0 rooms tampered") {
			t.Fatalf("verify all: %+v", r)
		}
		r = runCLI(t, u, "", "verify", "-room", "chat-1")
		if r.code != 0 || !strings.Contains(r.stdout, "chat-1: ok") {
			t.Fatalf("verify room: %+v", r)
		}
		if r := runCLI(t, u, "", "verify"); r.code != 2 {
			t.Fatalf("verify without room: %+v", r)
		}
	})

	t.Run("TailFollowsNewEvents", func(t *testing.T) {
		t.Parallel()
		u := eventstoretest.NewURL(t)
		done := make(chan result, 1)
		go func() { done <- runCLI(t, u, "", "tail", "-room", "user-9", "-max", "2") }()
		for i := range 2 {
			r := runCLI(t, u, "", "publish", "-event", "unread-count-update", "-room", "user-9", "-payload", `{"unreadCount":`+string(rune('1'+i))+`}`)
			if r.code != 0 {
				t.Fatalf("publish: %+v", r)
			}
		}
		select {
		case r := <-done:
			if r.code != 0 || len(lines(r.stdout)) != 2 {
				t.Fatalf("tail -max 2: %+v", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("tail did not follow the new events")
		}
	})
}
