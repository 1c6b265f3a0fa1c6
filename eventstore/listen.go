package eventstore

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen holds a dedicated connection that LISTENs on NotifyChannel and
// calls wake after every notification and after every (re)connect, since
// notifications sent while the connection was down are lost. It reconnects
// with jittered exponential backoff and returns when ctx is cancelled.
//
// wake must not block; a typical wake does a non-blocking send on a
// buffered channel of size one.
func (s *Store) Listen(ctx context.Context, wake func()) {
	s.ListenNotices(ctx, func(Notice) { wake() })
}

// Notice is one wake-up of ListenNotices.
type Notice struct {
	// HandedOff says the notification came from a group commit of this
	// store that tried the hand-off (Config.Handoff): the hand-off
	// consumer got its events already or was told to read them
	// (Config.HandoffMissed), so it need not be woken. False for other
	// processes' commits, AppendTx, and reconnects.
	HandedOff bool
}

// ListenNotices is Listen, telling each wake-up what it is about.
func (s *Store) ListenNotices(ctx context.Context, wake func(Notice)) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake, func() { backoff = 50 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		s.logger.WarnContext(ctx, "listener connection lost; reconnecting", "error", err, "backoff", backoff)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// noticePayload is the NOTIFY payload of a group commit: this store's
// hand-off mark if it tried the hand-off, else empty.
func (s *Store) noticePayload(triedHandoff bool) string {
	if triedHandoff {
		return "handoff:" + s.id
	}
	return ""
}

func (s *Store) listenOnce(ctx context.Context, wake func(Notice), connected func()) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	// Re-query after every (re)connect: anything notified while we were
	// away must still be found.
	wake(Notice{})
	mine := s.noticePayload(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		wake(Notice{HandedOff: n.Payload == mine})
	}
}
