package eventstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// The group commit's NOTIFY.
//
// A transaction that NOTIFYs takes, at commit, a cluster-wide lock on the
// notification queue and holds it until its commit record is flushed: two
// notifying transactions cannot commit at once, so group commits running
// side by side (several writers, Config.Writers, or several processes),
// which should overlap one batch's commit with another's fsync, queued
// behind each other's fsync instead (the publish path showed COMMITs
// waiting on that lock, wait event Lock/object). The NOTIFY is only a
// wake-up hint (the log is the truth, and every tail also polls), so the
// writers send it after their COMMIT, from one notifier goroutine and
// connection, in a transaction of its own with synchronous_commit off: it
// holds the queue lock only for a moment and never waits for a disk. A listener woken by it sees the commit's rows,
// since they are committed before the NOTIFY is sent.
//
// The notifier coalesces: commits that end while it is sending cost one
// more NOTIFY between them, not one each.

// notifyTimeout bounds one NOTIFY; a failed one is only logged (the tails
// poll).
const notifyTimeout = 5 * time.Second

// notifyAfterCommit asks the notifier to NOTIFY NotifyChannel with payload
// (noticePayload) soon. It never blocks.
func (s *Store) notifyAfterCommit(triedHandoff bool) {
	s.nmu.Lock()
	if triedHandoff {
		s.nHandoff = true
	} else {
		s.nPlain = true
	}
	s.nmu.Unlock()
	select {
	case s.nWake <- struct{}{}:
	default:
	}
}

// notifyLoop sends the NOTIFYs notifyAfterCommit asked for until stop is
// closed, and then those still pending. It keeps a connection of its own,
// with synchronous_commit off for its session, so that a NOTIFY costs one
// statement.
func (s *Store) notifyLoop(ctx context.Context, stop <-chan struct{}) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-s.nWake:
		case <-stop:
			s.sendNotices(ctx, &conn)
			return
		}
		s.sendNotices(ctx, &conn)
	}
}

// sendNotices sends the pending NOTIFYs on *conn, connecting first if
// *conn is nil; after a failure it closes *conn and sets it to nil.
func (s *Store) sendNotices(ctx context.Context, conn **pgx.Conn) {
	s.nmu.Lock()
	handoff, plain := s.nHandoff, s.nPlain
	s.nHandoff, s.nPlain = false, false
	s.nmu.Unlock()
	if !handoff && !plain {
		return
	}
	deadline := time.Now().Add(notifyTimeout)
	if *conn == nil {
		cfg := s.pool.Config().ConnConfig.Copy()
		cfg.RuntimeParams["synchronous_commit"] = "off"
		cctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := pgx.ConnectConfig(cctx, cfg)
		cancel()
		if err != nil {
			s.logger.WarnContext(ctx, "notify after commit: connect; listeners wake on their next poll", "error", err)
			return
		}
		*conn = c
	}
	// A deadline on the connection, not on ctx, as for the group commit
	// (writer.go): pgx registers a callback per statement on a context
	// that can end, and notifyLoop runs on Start's context without its
	// cancellation.
	err := (*conn).PgConn().Conn().SetDeadline(deadline)
	switch {
	case err != nil:
	case handoff && plain:
		_, err = (*conn).Exec(ctx, "SELECT pg_notify($1, $2), pg_notify($1, $3)", NotifyChannel, s.noticePayload(true), s.noticePayload(false))
	default:
		_, err = (*conn).Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, s.noticePayload(handoff))
	}
	if err == nil {
		err = (*conn).PgConn().Conn().SetDeadline(time.Time{})
	}
	if err != nil {
		s.logger.WarnContext(ctx, "notify after commit failed; listeners wake on their next poll", "error", err)
		(*conn).Close(context.WithoutCancel(ctx))
		*conn = nil
	}
}
