package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// runProject runs cmdProject as "roomlog project args..." would.
func runProject(t *testing.T, dbURL string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{"DATABASE_URL": dbURL}
	err = cmdProject(ctx, args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
	return out.String(), errb.String(), err
}

func TestCmdProject(t *testing.T) {
	t.Parallel()
	u := eventstoretest.NewURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := eventstore.New(pool, nil, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	for _, room := range []domain.Room{"user-u1", "user-u1", "user-u2"} {
		if _, err := s.Append(context.Background(), eventstore.AppendRequest{
			Type: "new-notification", Rooms: []domain.Room{room}, Producer: "test",
			Payload: json.RawMessage(`{"notification":{"_id":"n","type":"t","title":"t","body":"b","createdAt":"2025-03-01T09:00:00Z"}}`),
		}); err != nil {
			t.Fatal(err)
		}
	}

	out, _, err := runProject(t, u, "status")
	if err != nil || !strings.Contains(out, "PROJECTION") || strings.Count(out, "never") != 3 {
		t.Fatalf("status before any run: %v\n%s", err, out)
	}
	// The rebuild reads the tail, which waits for the cluster's oldest
	// running transaction: retry until it has seen all three events.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, err = runProject(t, u, "rebuild", "unread")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(out, "rebuilt unread: 2 rows") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rebuild: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := s.UnreadCount(context.Background(), "u1"); err != nil || n != 2 {
		t.Fatalf("u1 unread %d %v after the rebuild", n, err)
	}
	out, _, err = runProject(t, u, "status", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var sts []projectionStatusJSON
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 3 {
		t.Fatalf("status -json: %v\n%s", err, out)
	}
	if st := sts[1]; st.Name != "unread" || !st.Saved || st.Pending != 0 || st.SavedAt == nil {
		t.Fatalf("unread status %+v", st)
	}

	for _, args := range [][]string{nil, {"frobnicate"}, {"rebuild"}, {"rebuild", "-json"}, {"status", "-nope"}} {
		if _, _, err := runProject(t, u, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: err %v, want usage", args, err)
		}
	}
	if _, _, err := runProject(t, u, "rebuild", "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown projection: %v", err)
	}
}
