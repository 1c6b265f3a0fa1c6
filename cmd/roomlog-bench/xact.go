package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// xactWatch samples the age of the oldest transaction holding a
// transaction id anywhere on the PostgreSQL cluster (any database).
// roomlog's tail waits only for transactions that write events (the writer
// horizon, README "A tail that never skips"; before that it waited for
// pg_snapshot_xmin, i.e. for all of them), so an old one now shows a busy
// or shared cluster rather than a stalled tail. A nil *xactWatch
// samples nothing. Not safe for concurrent use: one cell at a time.
type xactWatch struct {
	conn *pgx.Conn
}

// openXactWatch connects to DATABASE_URL's server.
func openXactWatch(ctx context.Context) (*xactWatch, error) {
	_, admin, err := benchServer()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect to watch transactions: %w", err)
	}
	return &xactWatch{conn: conn}, nil
}

// Close closes the watch's connection.
func (w *xactWatch) Close(ctx context.Context) {
	if w != nil {
		_ = w.conn.Close(ctx)
	}
}

// oldestXactSQL is the age of the oldest transaction with an assigned
// xid (from the transaction's start; the xid may have come later, so an
// upper bound), its database and the start of its query.
const oldestXactSQL = `SELECT extract(epoch FROM clock_timestamp() - xact_start)::float8,
	coalesce(datname, ''), left(regexp_replace(query, '\s+', ' ', 'g'), 60)
FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY xact_start LIMIT 1`

// xactSample is the oldest transaction a watch saw.
type xactSample struct {
	age       time.Duration
	db, query string
}

// String is "<age> (<db>: <query>)", or "-" when nothing was seen.
func (x xactSample) String() string {
	if x.age <= 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s: %s)", ms(x.age), x.db, x.query)
}

// start samples every 100 ms until the returned stop is called; stop
// returns the oldest transaction seen (zero if w is nil or none was).
// Queries run under ctx itself, never a context that stop cancels: pgx
// closes a connection whose query is cancelled. If the connection was
// closed anyway (ctx ended, the server went away), samples reconnect.
func (w *xactWatch) start(ctx context.Context) (stop func() xactSample) {
	if w == nil {
		return func() xactSample { return xactSample{} }
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var worst xactSample
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			if w.conn.IsClosed() {
				if c, err := openXactWatch(ctx); err == nil {
					w.conn = c.conn
				}
			}
			var secs float64
			var db, query string
			// No rows (no transaction holds an xid) leaves worst as is.
			if err := w.conn.QueryRow(ctx, oldestXactSQL).Scan(&secs, &db, &query); err == nil {
				if age := time.Duration(secs * float64(time.Second)); age > worst.age {
					worst = xactSample{age: age, db: db, query: query}
				}
			}
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() xactSample {
		close(quit)
		wg.Wait()
		return worst
	}
}
