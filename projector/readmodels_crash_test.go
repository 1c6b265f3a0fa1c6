package projector_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

// The crash test runs a projection in a child process (this test binary,
// re-executed to run only TestCrashHelperProcess), stops the child inside
// the transaction of its second batch, after the batch's effects and just
// before its checkpoint, and kills it with SIGKILL there. A restarted
// projection must then apply every event exactly once.
const (
	crashEnvDB         = "ROOMLOG_CRASH_HELPER_DB"
	crashEnvProjection = "ROOMLOG_CRASH_HELPER_PROJECTION"
	crashEnvBatch      = "ROOMLOG_CRASH_HELPER_BATCH"
	crashMarker        = "ROOMLOG-CRASH-POINT"
)

// hangBeforeCheckpoint is a pgx tracer that, at the nth statement saving a
// checkpoint, prints crashMarker and blocks forever: the transaction is
// left open with the batch's effects written and the checkpoint not.
type hangBeforeCheckpoint struct {
	n    int64
	seen atomic.Int64
}

func (h *hangBeforeCheckpoint) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	// eventstore saves a checkpoint with this upsert (read.go,
	// saveCheckpoint). If that statement changes, the child never reaches
	// the crash point and the parent fails loudly.
	sql := strings.TrimSpace(data.SQL)
	if strings.HasPrefix(sql, "INSERT INTO checkpoints") && strings.Contains(sql, "DO UPDATE") && h.seen.Add(1) == h.n {
		fmt.Println(crashMarker)
		select {} // until SIGKILL
	}
	return ctx
}

func (*hangBeforeCheckpoint) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestCrashHelperProcess is the child of TestCrashBetweenEffectAndCheckpoint.
// Run directly, without its environment, it does nothing.
func TestCrashHelperProcess(t *testing.T) {
	url := os.Getenv(crashEnvDB)
	if url == "" {
		return
	}
	// The parent kills the child; this bounds an orphan's life.
	go func() {
		time.Sleep(2 * time.Minute)
		os.Exit(3)
	}()
	batch, err := strconv.ParseInt(os.Getenv(crashEnvBatch), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = &hangBeforeCheckpoint{n: batch}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := eventstore.New(pool, nil, nil)
	name := os.Getenv(crashEnvProjection)
	var p projector.Projection
	for _, q := range projector.Projections() {
		if q.Name == name {
			p = q
		}
	}
	if p.Handler == nil {
		t.Fatalf("no projection %q", name)
	}
	run, err := projector.New(projector.Config{
		Name: p.Name, Source: s, Checkpoints: s, HandlerSavesCheckpoint: true, Start: projector.FromBeginning,
		Handler: p.Handler(s), BatchSize: 3, PollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {} // the tracer blocks the runner; the parent kills us
}

// crashEvents publishes notifications and chat events (touching user rooms
// and a chat) and returns the log once the tail shows all of it.
func crashEvents(t *testing.T, s *eventstore.Store) []domain.Delivery {
	t.Helper()
	ctx := context.Background()
	var reqs []eventstore.AppendRequest
	add := func(typ, payload string, rooms ...domain.Room) {
		reqs = append(reqs, eventstore.AppendRequest{Type: typ, Rooms: rooms, Payload: json.RawMessage(payload), Producer: "test"})
	}
	for i := range 4 {
		add("new-notification", fmt.Sprintf(`{"notification":{"_id":"n%d","type":"t","title":"t","body":"b","createdAt":"2025-03-01T09:00:00Z"}}`, i), "user-u1", "user-u2")
		add("new-message", fmt.Sprintf(`{"chatId":"c1","senderId":"u1","message":{"_id":"m%d","content":"hi","senderId":"u1","createdAt":"2025-03-01T09:00:00Z"}}`, i), "chat-c1")
	}
	add("unread-count-update", `{"unreadCount":1}`, "user-u2")
	add("new-notification", `{"notification":{"_id":"n9","type":"t","title":"t","body":"b","createdAt":"2025-03-01T09:00:00Z"}}`, "user-u2")
	add("messages-read", `{"chatId":"c1","userId":"u2","upToMessageId":"m3","modifiedCount":4}`, "chat-c1")
	for _, r := range reqs {
		if _, err := s.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var all []domain.Delivery
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		var err error
		if all, err = s.ReadTail(ctx, domain.Position{}, eventstore.MaxReadLimit); err != nil {
			return err
		}
		if len(all) != 15 {
			return fmt.Errorf("tail shows %d of 15 deliveries", len(all))
		}
		return nil
	})
	return all
}

// upTo returns the deliveries at or before pos.
func upTo(all []domain.Delivery, pos domain.Position) []domain.Delivery {
	var out []domain.Delivery
	for _, d := range all {
		if !pos.Less(d.Position) {
			out = append(out, d)
		}
	}
	return out
}

// expectedModel folds deliveries into the model that projection should
// hold after applying each exactly once, in the shape observed reports.
func expectedModel(name string, ds []domain.Delivery) string {
	switch name {
	case projector.UnreadName:
		counts := map[string]int64{"u1": 0, "u2": 0}
		for _, c := range projector.UnreadChanges(ds) {
			if c.Set {
				counts[c.UserID] = c.Count
			} else {
				counts[c.UserID] += c.Count
			}
		}
		return fmt.Sprintf("u1=%d u2=%d", counts["u1"], counts["u2"])
	default:
		var ids []string
		for _, d := range ds {
			for _, ref := range domain.EntityRefs(d.Type, d.Room, d.Payload) {
				if ref == (domain.EntityRef{Kind: domain.EntityChat, ID: "c1"}) {
					ids = append(ids, d.ID)
				}
			}
		}
		return "c1=" + strings.Join(ids, ",")
	}
}

// observed reads projection's model through the store's API.
func observed(t *testing.T, s *eventstore.Store, name string) string {
	t.Helper()
	ctx := context.Background()
	switch name {
	case projector.UnreadName:
		u1, err := s.UnreadCount(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		u2, err := s.UnreadCount(ctx, "u2")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("u1=%d u2=%d", u1, u2)
	default:
		var ids []string
		for d, err := range s.EntityHistory(ctx, domain.EntityRef{Kind: domain.EntityChat, ID: "c1"}, time.Time{}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.ID)
		}
		return "c1=" + strings.Join(ids, ",")
	}
}

func TestCrashBetweenEffectAndCheckpoint(t *testing.T) {
	t.Parallel()
	for _, name := range []string{projector.UnreadName, projector.EntitiesName} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := eventstoretest.NewURL(t)
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			s := eventstore.New(pool, rmLogger(t), nil)
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Stop)
			all := crashEvents(t, s)

			// 1. The child commits batch 1 and stops inside batch 2's
			// transaction, before its checkpoint.
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnvDB+"="+url, crashEnvProjection+"="+name, crashEnvBatch+"=2")
			cmd.Stderr = eventstoretest.LogWriter(t)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			reached := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if sc.Text() == crashMarker {
						close(reached)
						break
					}
				}
				for sc.Scan() { // drain until the child dies
				}
				exited <- cmd.Wait()
			}()
			select {
			case <-reached:
			case err := <-exited:
				t.Fatalf("the child exited before the crash point: %v", err)
			case <-time.After(60 * time.Second):
				_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
				t.Fatal("the child never reached the crash point (has eventstore's checkpoint upsert changed?)")
			}

			// The child's transaction is open, its effects written but
			// not committed.
			checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				var n int
				err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND state = 'idle in transaction'`).Scan(&n)
				if err == nil && n != 1 {
					err = fmt.Errorf("%d transactions idle in transaction, want the child's", n)
				}
				return err
			})
			cp, ok, err := s.LoadCheckpoint(ctx, name)
			if err != nil || !ok || cp.IsZero() {
				t.Fatalf("batch 1 not committed: checkpoint %v %v %v", cp, ok, err)
			}
			committed := upTo(all, cp)
			if len(committed) == len(all) {
				t.Fatal("everything committed before the crash point")
			}

			// 2. Kill -9 between the effect and the checkpoint.
			if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var exitErr *exec.ExitError
			if err := <-exited; !errors.As(err, &exitErr) {
				t.Fatalf("child exit: %v, want killed", err)
			}
			// The open transaction dies with the child's connection: the
			// model holds exactly the committed batch.
			if got, want := observed(t, s, name), expectedModel(name, committed); got != want {
				t.Fatalf("after the kill: %s, want %s", got, want)
			}
			if again, _, _ := s.LoadCheckpoint(ctx, name); again != cp {
				t.Fatalf("checkpoint moved from %v to %v", cp, again)
			}

			// 3. Restart: every event applied exactly once.
			reg, err := projector.NewRegistry(projector.RegistryConfig{Store: s, BatchSize: 3})
			if err != nil {
				t.Fatal(err)
			}
			end, err := reg.CatchUp(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if end != all[len(all)-1].Position {
				t.Fatalf("caught up to %v, want %v", end, all[len(all)-1].Position)
			}
			if got, want := observed(t, s, name), expectedModel(name, all); got != want {
				t.Fatalf("after restart: %s, want %s", got, want)
			}
			// The sanity check on the oracle: u1 got 4 notifications, u2
			// was set to 1 after 4 and got one more; c1 has 4 messages and
			// a read receipt.
			want := map[string]string{projector.UnreadName: "u1=4 u2=2"}[name]
			if want != "" && expectedModel(name, all) != want {
				t.Fatalf("oracle says %s, want %s", expectedModel(name, all), want)
			}
			if name == projector.EntitiesName && strings.Count(expectedModel(name, all), ",") != 4 {
				t.Fatalf("oracle says %s, want 5 events", expectedModel(name, all))
			}
		})
	}
}
