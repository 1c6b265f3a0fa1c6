package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
)

// PresenceProducer is the producer of every user-status-change event that
// presence appends to the log.
const PresenceProducer = "roomlog-presence"

// VolatileChannel is the LISTEN/NOTIFY channel that carries volatile
// (never logged) broadcasts, such as typing indicators, between server
// processes.
const VolatileChannel = "roomlog_volatile"

// MaxVolatileBytes bounds one volatile message: PostgreSQL refuses NOTIFY
// payloads of 8000 bytes or more.
const MaxVolatileBytes = 7900

// presenceChunk bounds how many users one sweep transaction handles.
const presenceChunk = 200

// PresenceStatus is a user's presence as GET /api/v1/presence reports it.
type PresenceStatus struct {
	// UserID is the user asked about.
	UserID string
	// Status is online while the user has at least one socket that sent
	// user-online on any server process, and offline otherwise (also for
	// users never seen).
	Status domain.PresenceStatus
	// LastSeen is the current database time for an online user and, for an
	// offline one, when their last socket went away; zero for a user never
	// seen.
	LastSeen time.Time
}

// PresenceSession is one socket that counts towards its user's presence.
type PresenceSession struct {
	// Node identifies the server process that holds the socket.
	Node string
	// SocketID is the socket's id, unique within Node.
	SocketID string
	// UserID is the socket's authenticated user.
	UserID string
}

// PresenceHeartbeat records that node is alive. It reports registered=true
// when the node had no row: on its first heartbeat, and after other nodes
// swept it as dead (for instance after a database outage longer than the
// presence TTL); the node should then re-register its sessions.
func (s *Store) PresenceHeartbeat(ctx context.Context, node string) (registered bool, err error) {
	err = s.pool.QueryRow(ctx, `INSERT INTO presence_nodes (node_id) VALUES ($1)
		ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()
		RETURNING xmax = 0`, node).Scan(&registered)
	if err != nil {
		return false, classify("presence heartbeat", err)
	}
	return registered, nil
}

// PresenceConnect registers sess. If it is its user's first session on any
// node, the user comes online: a user-status-change {status: "online",
// lastSeen: at} is appended to room global in the same transaction, and
// online is true. Registering a session that already exists does nothing.
func (s *Store) PresenceConnect(ctx context.Context, sess PresenceSession, at time.Time) (online bool, err error) {
	if sess.Node == "" || sess.SocketID == "" || domain.ValidID(sess.UserID) != nil {
		return false, domain.Errorf(domain.CodeInvalid, "presence session needs a node, a socket id and a valid user id")
	}
	at = at.UTC().Truncate(time.Microsecond)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		online = false
		if err := lockPresenceUsers(ctx, tx, []string{sess.UserID}); err != nil {
			return err
		}
		var exists bool
		var sessions int
		if err := tx.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM presence_sessions WHERE node_id = $1 AND socket_id = $2),
				(SELECT count(*) FROM presence_sessions WHERE user_id = $3)`,
			sess.Node, sess.SocketID, sess.UserID).Scan(&exists, &sessions); err != nil {
			return classify("presence connect: read sessions", err)
		}
		if exists {
			return nil
		}
		if sessions == 0 {
			// AppendTx must be the first write of the transaction; the
			// advisory lock and the reads above assign no transaction id.
			req, err := statusChange(sess.UserID, domain.StatusOnline, at)
			if err != nil {
				return err
			}
			if _, err := s.AppendTx(ctx, tx, []AppendRequest{req}); err != nil {
				return fmt.Errorf("presence connect: %w", err)
			}
			online = true
		}
		b := &pgx.Batch{}
		// The node row may be missing if the session races the node's first
		// heartbeat, or if the node was swept; without it the sweeper would
		// remove the session at once.
		b.Queue(`INSERT INTO presence_nodes (node_id) VALUES ($1) ON CONFLICT (node_id) DO NOTHING`, sess.Node)
		b.Queue(`INSERT INTO presence_sessions (node_id, socket_id, user_id, connected_at) VALUES ($1, $2, $3, $4)`,
			sess.Node, sess.SocketID, sess.UserID, at)
		if online {
			queueStatus(b, []string{sess.UserID}, domain.StatusOnline, []time.Time{at})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify("presence connect: write", err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return online, nil
}

// PresenceDisconnect removes the session (node, socketID). If it was its
// user's last session on any node, the user goes offline: a
// user-status-change {status: "offline", lastSeen: at} is appended to room
// global in the same transaction, and offline is true. Removing a session
// that does not exist does nothing.
func (s *Store) PresenceDisconnect(ctx context.Context, node, socketID string, at time.Time) (offline bool, err error) {
	var user string
	err = s.pool.QueryRow(ctx, `SELECT user_id FROM presence_sessions WHERE node_id = $1 AND socket_id = $2`, node, socketID).Scan(&user)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, classify("presence disconnect: find session", err)
	}
	offs, err := s.presenceRemove(ctx, removal{node: node, socketID: socketID, users: []string{user}, at: at})
	if err != nil {
		return false, err
	}
	return offs > 0, nil
}

// PresenceDropNode removes every session of node and the node itself, as a
// node does when it shuts down gracefully; users left without a session go
// offline with lastSeen at. It returns how many users went offline.
func (s *Store) PresenceDropNode(ctx context.Context, node string, at time.Time) (int, error) {
	total := 0
	for {
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT user_id FROM presence_sessions WHERE node_id = $1 ORDER BY user_id LIMIT $2`, node, presenceChunk)
		if err != nil {
			return total, classify("presence drop node: read sessions", err)
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return total, classify("presence drop node: read sessions", err)
		}
		if len(users) == 0 {
			break
		}
		n, err := s.presenceRemove(ctx, removal{node: node, users: users, at: at})
		if err != nil {
			return total, err
		}
		total += n
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM presence_nodes WHERE node_id = $1`, node); err != nil {
		return total, classify("presence drop node", err)
	}
	return total, nil
}

// PresenceSweep removes the sessions of every node whose last heartbeat is
// older than ttl by the database clock (or that has no node row at all),
// then the dead nodes themselves. Users left without a session go offline
// with lastSeen set to their node's last heartbeat. Several nodes may sweep
// at once: each user's transition is announced exactly once. It returns how
// many users went offline.
func (s *Store) PresenceSweep(ctx context.Context, ttl time.Duration) (int, error) {
	if ttl <= 0 {
		return 0, domain.Errorf(domain.CodeInvalid, "presence sweep: ttl must be positive")
	}
	total := 0
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT s.node_id, s.user_id, max(coalesce(n.heartbeat_at, s.connected_at))
			FROM presence_sessions s
			LEFT JOIN presence_nodes n ON n.node_id = s.node_id
			WHERE n.node_id IS NULL OR n.heartbeat_at < now() - make_interval(secs => $1)
			GROUP BY s.node_id, s.user_id
			ORDER BY s.node_id, s.user_id
			LIMIT $2`, ttl.Seconds(), presenceChunk)
		if err != nil {
			return total, classify("presence sweep: find dead sessions", err)
		}
		type dead struct {
			node, user string
			seen       time.Time
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dead, error) {
			var d dead
			err := r.Scan(&d.node, &d.user, &d.seen)
			return d, err
		})
		if err != nil {
			return total, classify("presence sweep: find dead sessions", err)
		}
		if len(found) == 0 {
			break
		}
		removedAny := false
		for i := 0; i < len(found); {
			j := i
			r := removal{node: found[i].node, deadAfter: ttl, seen: map[string]time.Time{}}
			for ; j < len(found) && found[j].node == found[i].node; j++ {
				r.users = append(r.users, found[j].user)
				r.seen[found[j].user] = found[j].seen
			}
			n, removed, err := s.presenceRemoveDead(ctx, r)
			if err != nil {
				return total, err
			}
			total += n
			removedAny = removedAny || removed
			i = j
		}
		if !removedAny {
			// Every candidate node came back to life in the meantime.
			break
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM presence_nodes n
		WHERE n.heartbeat_at < now() - make_interval(secs => $1)
		  AND NOT EXISTS (SELECT 1 FROM presence_sessions s WHERE s.node_id = n.node_id)`, ttl.Seconds()); err != nil {
		return total, classify("presence sweep: delete dead nodes", err)
	}
	return total, nil
}

// PresenceSessions lists node's registered sessions, ordered by socket id.
func (s *Store) PresenceSessions(ctx context.Context, node string) ([]PresenceSession, error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id, socket_id, user_id FROM presence_sessions WHERE node_id = $1 ORDER BY socket_id`, node)
	if err != nil {
		return nil, classify("presence sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PresenceSession, error) {
		var p PresenceSession
		err := r.Scan(&p.Node, &p.SocketID, &p.UserID)
		return p, err
	})
	if err != nil {
		return nil, classify("presence sessions", err)
	}
	return out, nil
}

// Presence returns the presence of each distinct user in userIDs, in the
// order first asked. The status is the one the log last announced for the
// user (see PresenceStatus).
func (s *Store) Presence(ctx context.Context, userIDs []string) ([]PresenceStatus, error) {
	ids := make([]string, 0, len(userIDs))
	seen := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return []PresenceStatus{}, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT u.id, coalesce(p.status, 'offline'),
		       CASE WHEN p.status = 'online' THEN now() ELSE p.last_seen END
		FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord)
		LEFT JOIN presence_users p ON p.user_id = u.id
		ORDER BY u.ord`, ids)
	if err != nil {
		return nil, classify("presence", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PresenceStatus, error) {
		var p PresenceStatus
		var status string
		var last *time.Time
		if err := r.Scan(&p.UserID, &status, &last); err != nil {
			return p, err
		}
		p.Status = domain.PresenceStatus(status)
		if last != nil {
			p.LastSeen = last.UTC()
		}
		return p, nil
	})
	if err != nil {
		return nil, classify("presence", err)
	}
	return out, nil
}

// PublishVolatile sends msg to every process listening with ListenVolatile,
// including this one. Nothing is stored: a listener that is disconnected
// at the time misses it. msg must be shorter than MaxVolatileBytes.
func (s *Store) PublishVolatile(ctx context.Context, msg []byte) error {
	if len(msg) >= MaxVolatileBytes {
		return domain.Errorf(domain.CodeTooLarge, "volatile message of %d bytes; the limit is %d", len(msg), MaxVolatileBytes-1)
	}
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", VolatileChannel, string(msg)); err != nil {
		return classify("publish volatile", err)
	}
	return nil
}

// ListenVolatile holds a dedicated connection that LISTENs on
// VolatileChannel and calls fn with each message, in the order PostgreSQL
// delivers them, from a single goroutine. ready, if not nil, is called
// after every (re)connect once the LISTEN is in place. It reconnects with
// jittered exponential backoff and returns when ctx is cancelled.
func (s *Store) ListenVolatile(ctx context.Context, ready func(), fn func(msg []byte)) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenVolatileOnce(ctx, func() {
			backoff = 50 * time.Millisecond
			if ready != nil {
				ready()
			}
		}, fn)
		if ctx.Err() != nil {
			return
		}
		s.logger.WarnContext(ctx, "volatile listener connection lost; reconnecting", "error", err, "backoff", backoff)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) listenVolatileOnce(ctx context.Context, connected func(), fn func([]byte)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{VolatileChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn([]byte(n.Payload))
	}
}

// removal describes sessions to remove under their users' locks.
type removal struct {
	node string
	// socketID, if set, limits the removal to that one session; otherwise
	// every session of users on node goes.
	socketID string
	users    []string
	// at is the lastSeen of users who go offline, unless seen names one.
	at   time.Time
	seen map[string]time.Time
	// deadAfter, if set, makes the removal happen only if node is still
	// dead (no heartbeat within deadAfter) once the locks are held.
	deadAfter time.Duration
}

func (s *Store) presenceRemove(ctx context.Context, r removal) (int, error) {
	n, _, err := s.presenceRemoveDead(ctx, r)
	return n, err
}

// presenceRemoveDead removes r's sessions in one transaction and appends an
// offline event for every user left without a session. It reports how many
// users went offline and whether anything was removed.
func (s *Store) presenceRemoveDead(ctx context.Context, r removal) (offline int, removed bool, err error) {
	users := slices.Clone(r.users)
	slices.Sort(users)
	users = slices.Compact(users)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		offline, removed = 0, false
		if err := lockPresenceUsers(ctx, tx, users); err != nil {
			return err
		}
		if r.deadAfter > 0 {
			var alive bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM presence_nodes
				WHERE node_id = $1 AND heartbeat_at >= now() - make_interval(secs => $2))`,
				r.node, r.deadAfter.Seconds()).Scan(&alive); err != nil {
				return classify("presence remove: check node", err)
			}
			if alive {
				return nil
			}
		}
		rows, err := tx.Query(ctx, `
			SELECT user_id,
			       count(*) FILTER (WHERE node_id = $1 AND ($3 = '' OR socket_id = $3)),
			       count(*) FILTER (WHERE NOT (node_id = $1 AND ($3 = '' OR socket_id = $3)))
			FROM presence_sessions
			WHERE user_id = ANY($2::text[])
			GROUP BY user_id
			ORDER BY user_id`, r.node, users, r.socketID)
		if err != nil {
			return classify("presence remove: read sessions", err)
		}
		var gone []string
		var goneAt []time.Time
		var reqs []AppendRequest
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var user string
				var here, elsewhere int
				if err := rows.Scan(&user, &here, &elsewhere); err != nil {
					return classify("presence remove: scan", err)
				}
				if here == 0 {
					continue
				}
				removed = true
				if elsewhere > 0 {
					continue
				}
				at := r.at
				if t, ok := r.seen[user]; ok {
					at = t
				}
				at = at.UTC().Truncate(time.Microsecond)
				req, err := statusChange(user, domain.StatusOffline, at)
				if err != nil {
					return err
				}
				reqs = append(reqs, req)
				gone = append(gone, user)
				goneAt = append(goneAt, at)
			}
			return rows.Err()
		}()
		if err != nil {
			return classify("presence remove: read sessions", err)
		}
		if !removed {
			return nil
		}
		if len(reqs) > 0 {
			// The first write of the transaction, as AppendTx requires.
			if _, err := s.AppendTx(ctx, tx, reqs); err != nil {
				return fmt.Errorf("presence remove: %w", err)
			}
		}
		b := &pgx.Batch{}
		if r.socketID != "" {
			b.Queue(`DELETE FROM presence_sessions WHERE node_id = $1 AND socket_id = $2`, r.node, r.socketID)
		} else {
			b.Queue(`DELETE FROM presence_sessions WHERE node_id = $1 AND user_id = ANY($2::text[])`, r.node, users)
		}
		if len(gone) > 0 {
			queueStatus(b, gone, domain.StatusOffline, goneAt)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify("presence remove: write", err)
		}
		offline = len(gone)
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return offline, removed, nil
}

// lockPresenceUsers takes each user's presence lock for the rest of tx, in
// sorted order so that concurrent transactions cannot deadlock. Advisory
// locks assign no transaction id, so AppendTx may still follow.
func lockPresenceUsers(ctx context.Context, tx pgx.Tx, users []string) error {
	keys := make([]int64, 0, len(users))
	for _, u := range users {
		keys = append(keys, lockKey("presence", u))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if _, err := tx.Exec(ctx, "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k", keys); err != nil {
		return classify("presence: lock users", err)
	}
	return nil
}

// queueStatus upserts the status of users into presence_users.
func queueStatus(b *pgx.Batch, users []string, status domain.PresenceStatus, at []time.Time) {
	b.Queue(`INSERT INTO presence_users (user_id, status, last_seen)
		SELECT u, $2, t FROM unnest($1::text[], $3::timestamptz[]) AS x(u, t)
		ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, last_seen = EXCLUDED.last_seen, updated_at = now()`,
		users, string(status), at)
}

// statusChange builds the user-status-change append for user, validated
// against the catalogue like any other published event.
func statusChange(user string, status domain.PresenceStatus, at time.Time) (AppendRequest, error) {
	payload, err := json.Marshal(domain.UserStatusChange{UserID: user, Status: status, LastSeen: at.UTC()})
	if err != nil {
		return AppendRequest{}, fmt.Errorf("presence: encode status change: %w", err)
	}
	rooms := []domain.Room{domain.RoomGlobal}
	if err := domain.ValidatePublish(domain.EventUserStatusChange, rooms, payload); err != nil {
		return AppendRequest{}, fmt.Errorf("presence: status change for %s: %w", strconv.Quote(user), err)
	}
	return AppendRequest{Type: domain.EventUserStatusChange, Rooms: rooms, Payload: payload, Producer: PresenceProducer}, nil
}
