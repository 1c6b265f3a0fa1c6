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

func (s *Store) listenOnce(ctx context.Context, wake func(), connected func()) error {
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
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}
