package eventstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// TestGroupCommitNotifiesOutsideItsTransaction: a transaction that NOTIFYs
// holds PostgreSQL's notification-queue lock through its commit's fsync,
// which would serialise the group-commit writers; so the group commit's
// own transaction must not NOTIFY (the store notifies after it), while
// AppendTx, whose caller commits, still notifies inside the transaction.
func TestGroupCommitNotifiesOutsideItsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	notifies := func(sql []string) bool {
		for _, q := range sql {
			if strings.Contains(q, "pg_notify") {
				return true
			}
		}
		return false
	}
	sql, err := s.AppendStatements(ctx, nil, []eventstore.AppendRequest{req("x-own", `{}`, "user-n1")})
	if err != nil {
		t.Fatal(err)
	}
	if notifies(sql) {
		t.Fatalf("the group commit's transaction notifies: %q", sql)
	}
	if sql[len(sql)-1] != "COMMIT" {
		t.Fatalf("the group commit did not commit: %q", sql)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	sql, err = s.AppendStatements(ctx, tx, []eventstore.AppendRequest{req("x-tx", `{}`, "user-n1")})
	if err != nil {
		t.Fatal(err)
	}
	if !notifies(sql) {
		t.Fatalf("AppendTx does not notify at its caller's commit: %q", sql)
	}
}

// TestNotifyAfterCommit: every group commit is followed by a notification,
// its rows readable by then, even when the store stops right after the
// append returned.
func TestNotifyAfterCommit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := eventstoretest.New(t)
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{eventstore.NotifyChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	s := eventstore.New(pool, testLogger(t), nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, req("x-last", `{}`, "user-n2"))
	if err != nil {
		t.Fatal(err)
	}
	s.Stop() // the notification must not be lost to the shutdown
	if _, err := conn.WaitForNotification(ctx); err != nil {
		t.Fatalf("no notification after the commit: %v", err)
	}
	page, err := s.ReadRoom(ctx, domain.Room("user-n2"), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].ID != res.EventID {
		t.Fatalf("after the notification the room holds %v, want event %s", page.Events, res.EventID)
	}
}
