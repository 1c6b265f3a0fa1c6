package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/roomlog/roomlog/domain"
)

// MaxSubmissionRows caps the rows (events × their rooms) one AppendBatch
// may write: 1,000 events of 64 rooms each.
const MaxSubmissionRows = 64000

// MaxIdempotencyKeyLen bounds an idempotency key.
const MaxIdempotencyKeyLen = 200

// AppendRequest is one logical event to append to one or more rooms.
// Catalogue validation (domain.ValidatePublish) is the caller's job;
// the store only checks what it needs to stay consistent.
type AppendRequest struct {
	// Type is the event's catalogue name.
	Type string
	// Rooms are the rooms the event targets; at least one, no duplicates.
	Rooms []domain.Room
	// Payload is a JSON value; it is stored compacted, byte for byte.
	Payload json.RawMessage
	// Producer names who published the event (an API key's name).
	Producer string
	// IdempotencyKey, if set, makes the append idempotent forever for this
	// producer: the same key with the same content returns the original
	// result; with other content the append fails with domain.ErrConflict.
	IdempotencyKey string
}

// RoomSeq is where an event landed in one room.
type RoomSeq struct {
	Room domain.Room
	Seq  int64
}

// AppendResult describes an appended (or idempotently replayed) event.
type AppendResult struct {
	// EventID is the event's id, shared by all its rooms.
	EventID string
	// Deliveries lists the event's room and seq in each target room, in the
	// order the request named the rooms.
	Deliveries []RoomSeq
	// At is when the log accepted the event.
	At time.Time
	// Replayed is true when the idempotency key matched an earlier append
	// and nothing new was written.
	Replayed bool
}

type prepared struct {
	req         AppendRequest
	payload     []byte
	contentHash []byte
	eventID     uuid.UUID
}

type submission struct {
	ctx  context.Context
	reqs []prepared
	rows int
	done chan struct{}
	res  []AppendResult
	err  error
}

func (s *submission) finish(res []AppendResult, err error) {
	s.res, s.err = res, err
	close(s.done)
}

// Append appends one event and returns once it is durably committed. See
// AppendBatch.
func (s *Store) Append(ctx context.Context, req AppendRequest) (AppendResult, error) {
	res, err := s.AppendBatch(ctx, []AppendRequest{req})
	if err != nil {
		return AppendResult{}, err
	}
	return res[0], nil
}

// AppendBatch appends events atomically (all or none) through the
// group-commit writer and returns once they are durably committed, one
// result per request in order. Concurrent callers share commits.
//
// Errors carry domain codes: CodeInvalid for malformed requests,
// CodeConflict for a reused idempotency key with other content,
// CodeUnavailable when the database cannot be reached or the store is
// stopping. If ctx is cancelled while the batch waits, AppendBatch returns
// ctx's error, and the batch may or may not have been committed: retry with
// the same idempotency keys to find out.
func (s *Store) AppendBatch(ctx context.Context, reqs []AppendRequest) ([]AppendResult, error) {
	sub, err := s.newSubmission(ctx, reqs)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	running := s.started && !s.stopped
	s.mu.Unlock()
	if !running {
		return nil, errStopped
	}
	select {
	case s.queue <- sub:
	case <-ctx.Done():
		return nil, fmt.Errorf("append: %w", ctx.Err())
	case <-s.stopCh:
		return nil, errStopped
	}
	select {
	case <-sub.done:
		return sub.res, sub.err
	case <-ctx.Done():
		return nil, fmt.Errorf("append: outcome unknown: %w", ctx.Err())
	}
}

// AppendTx appends events inside the caller's transaction, so they commit or
// roll back together with the caller's own writes (a transactional outbox).
// Nothing is durable or visible until the caller commits; listeners are
// notified at commit.
//
// AppendTx must be the first write of tx: it takes its room locks before tx
// has a transaction id, which is what keeps each room's rows in commit order
// for the tail. If tx has already written, AppendTx returns CodeInvalid.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, reqs []AppendRequest) ([]AppendResult, error) {
	sub, err := s.newSubmission(ctx, reqs)
	if err != nil {
		return nil, err
	}
	var assigned bool
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id_if_assigned() IS NOT NULL").Scan(&assigned); err != nil {
		return nil, classify("append tx: check xid", err)
	}
	if assigned {
		return nil, domain.Errorf(domain.CodeInvalid, "AppendTx must be the first write of its transaction")
	}
	res, subErrs, _, err := s.appendInTx(ctx, tx, []*submission{sub}, false, false)
	if err != nil {
		return nil, err
	}
	if subErrs[0] != nil {
		return nil, subErrs[0]
	}
	return res[0], nil
}

func (s *Store) newSubmission(ctx context.Context, reqs []AppendRequest) (*submission, error) {
	if len(reqs) == 0 {
		return nil, domain.Errorf(domain.CodeInvalid, "no events to append")
	}
	sub := &submission{ctx: ctx, done: make(chan struct{}), reqs: make([]prepared, len(reqs))}
	for i, r := range reqs {
		p, err := prepare(r)
		if err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		sub.reqs[i] = p
		sub.rows += len(r.Rooms)
	}
	if sub.rows > MaxSubmissionRows {
		return nil, domain.Errorf(domain.CodeInvalid, "batch targets %d rooms in all; the limit is %d", sub.rows, MaxSubmissionRows)
	}
	return sub, nil
}

func prepare(r AppendRequest) (prepared, error) {
	var fields []domain.FieldError
	if r.Type == "" {
		fields = append(fields, domain.FieldError{Field: "event", Message: "required"})
	}
	if len(r.Rooms) == 0 {
		fields = append(fields, domain.FieldError{Field: "rooms", Message: "at least one room is required"})
	}
	seen := make(map[domain.Room]bool, len(r.Rooms))
	for _, room := range r.Rooms {
		if room == "" {
			fields = append(fields, domain.FieldError{Field: "rooms", Message: "empty room name"})
		}
		if seen[room] {
			fields = append(fields, domain.FieldError{Field: "rooms", Message: fmt.Sprintf("room %q named twice", room)})
		}
		seen[room] = true
	}
	if r.Producer == "" {
		fields = append(fields, domain.FieldError{Field: "producer", Message: "required"})
	}
	if len(r.IdempotencyKey) > MaxIdempotencyKeyLen {
		fields = append(fields, domain.FieldError{Field: "id", Message: fmt.Sprintf("idempotency key longer than %d bytes", MaxIdempotencyKeyLen)})
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, r.Payload); err != nil {
		fields = append(fields, domain.FieldError{Field: "payload", Message: "not valid JSON"})
	} else if hasNULEscape(compact.Bytes()) {
		// PostgreSQL's jsonb (used by the audit index) cannot hold U+0000.
		fields = append(fields, domain.FieldError{Field: "payload", Message: `\u0000 is not allowed`})
	}
	if len(fields) > 0 {
		return prepared{}, &domain.Error{Code: domain.CodeInvalid, Message: "invalid event", Fields: fields}
	}
	p := prepared{req: r, payload: compact.Bytes(), eventID: newEventID()}
	if r.IdempotencyKey == "" {
		return p, nil
	}
	// Only keyed appends need the content hash; canonicalising costs a
	// decode and an encode.
	canon, err := canonicalJSON(p.payload)
	if err != nil {
		return prepared{}, &domain.Error{Code: domain.CodeInvalid, Message: "invalid event", Fields: []domain.FieldError{{Field: "payload", Message: "not valid JSON"}}}
	}
	h := sha256.New()
	h.Write([]byte(r.Type))
	h.Write([]byte{0})
	for _, room := range r.Rooms {
		h.Write([]byte(room))
		h.Write([]byte{0})
	}
	h.Write(canon)
	p.contentHash = h.Sum(nil)
	return p, nil
}

// canonicalJSON re-encodes v with sorted object keys, so that an idempotent
// retry whose JSON differs only in key order or spacing counts as the same
// content.
func canonicalJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// lockBuckets is how many advisory locks rooms (and, separately,
// idempotency keys) hash into. Bucketing bounds the locks one transaction
// holds, so that a batch spanning thousands of rooms cannot exhaust
// PostgreSQL's shared lock table (max_locks_per_transaction ×
// max_connections). Two rooms in one bucket merely serialise their writers;
// the per-room ordering argument (lock before the transaction id) holds for
// a bucket exactly as for a room.
const lockBuckets = 512

// lockKey returns the advisory lock key of name's bucket in its kind's
// key space.
func lockKey(kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	ns := fnv.New32a()
	ns.Write([]byte(kind))
	return int64(ns.Sum32())<<32 | int64(h.Sum64()%lockBuckets)
}

type idemKey struct{ producer, key string }

type idemHit struct {
	contentHash []byte
	eventID     string
}

type head struct {
	seq  int64
	hash []byte
}

// batchSender runs pipelined statements: a pgx.Tx (AppendTx) or the
// group-commit writer's own connection.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// handoffLimit caps the rows of older transactions that the fan-out has
// not yet emitted and one group commit reads back for the in-process
// hand-off (its own rows come from memory); a commit that finds as many
// leaves the stretch to the tail.
const handoffLimit = 4000

// lockKeysSQL takes a transaction's advisory locks ($1, sorted; see
// lockKey), before its first write.
const lockKeysSQL = "SELECT " + lockKeysExpr

// lockKeysExpr takes the advisory locks of the keys in $1.
const lockKeysExpr = "count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k"

// insertEventsSQL inserts a group commit's rows, one array parameter per
// column.
const insertEventsSQL = `INSERT INTO events (event_id, room, seq, type, payload, producer, created_at, prev_hash, hash)
			SELECT e::uuid, r, s, t, p::json, pr, $7, ph, h
			FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $8::bytea[], $9::bytea[])
			  AS u(e, r, s, t, p, pr, ph, h)`

// implicitLockSQL opens a one-round-trip group commit: it sets
// synchronous_commit ($2) for the transaction and takes its advisory
// locks ($1, as lockKeysSQL). The transaction is the pipeline's implicit
// one: with no BEGIN, every statement up to the batch's Sync runs in one
// transaction, which the Sync commits (or, after an error, rolls back), so
// BEGIN, SET LOCAL and COMMIT cost no statements of their own.
const implicitLockSQL = "SELECT set_config('synchronous_commit', $2, true), " + lockKeysExpr

// headsMovedCode is the SQLSTATE roomlog_advance_heads raises when a room
// head is not where a one-round-trip append built on (heads.go).
const headsMovedCode = "RLH01"

// uniqueViolation is PostgreSQL's SQLSTATE unique_violation.
const uniqueViolation = "23505"

// errStaleHeads reports that a one-round-trip append aborted, with nothing
// written, because it built on heads that had moved (or on an idempotency
// key it did not know): the caller appends again, reading the heads first.
var errStaleHeads = errors.New("append: remembered heads or keys were stale")

// appended is what appendInTx wrote beyond the per-submission results.
type appended struct {
	// handoff is every event after handoffAfter up to and including this
	// transaction's own rows, in tail order, when the hand-off applies
	// (see Config.Handoff); nil otherwise.
	handoff      []domain.Delivery
	handoffAfter domain.Position
	// handoffTried says the commit tried the hand-off (and its NOTIFY
	// must say so), whether or not it could hand off.
	handoffTried bool
	// notify says the caller must NOTIFY after the commit (the group
	// commit's own transaction wrote events; see notify.go).
	notify bool
	// roundTrips counts the transaction's round trips to PostgreSQL.
	roundTrips int
}

// lockSet is what a transaction locks and looks up: its advisory lock
// keys and rooms, both sorted, and its idempotency keys.
type lockSet struct {
	keys  []int64
	rooms []string
	idem  map[idemKey]bool
}

// collectLocks returns every room and idempotency key of subs, sorted so
// that concurrent writers always lock in the same order.
func collectLocks(subs []*submission) lockSet {
	var ls lockSet
	rooms := map[domain.Room]bool{}
	ls.idem = map[idemKey]bool{}
	for _, sub := range subs {
		for _, p := range sub.reqs {
			for _, r := range p.req.Rooms {
				if !rooms[r] {
					rooms[r] = true
					ls.keys = append(ls.keys, lockKey("room", string(r)))
				}
			}
			if p.req.IdempotencyKey != "" {
				k := idemKey{p.req.Producer, p.req.IdempotencyKey}
				if !ls.idem[k] {
					ls.idem[k] = true
					ls.keys = append(ls.keys, lockKey("idem", k.producer+"\x00"+k.key))
				}
			}
		}
	}
	slices.Sort(ls.keys)
	ls.keys = slices.Compact(ls.keys)
	ls.rooms = make([]string, 0, len(rooms))
	for r := range rooms {
		ls.rooms = append(ls.rooms, string(r))
	}
	slices.Sort(ls.rooms)
	return ls
}

// newRows are the rows a transaction inserts into events, one entry per
// event and room, in insert order.
type newRows struct {
	ids, rooms, types, producers []string
	seqs                         []int64
	payloads, prev, hash         [][]byte // payloads go to a text[] parameter
	at                           time.Time
}

// replaySlot is a request that repeats an idempotency key: it gets the
// original's result.
type replaySlot struct {
	sub, req int
	replayOf string // event id of the original
}

// plan is what a transaction writes, decided from the heads and known
// idempotency keys it found.
type plan struct {
	results [][]AppendResult
	subErrs []error
	rows    newRows
	// heads are the rooms' heads after rows (rooms without rows keep what
	// was found).
	heads map[domain.Room]head
	// base, for a one-round-trip append, are the remembered heads rows
	// build on, which roomlog_advance_heads checks (nil otherwise).
	base map[domain.Room]head
	// new idempotency keys
	keyProducers, keyKeys, keyEvents []string
	keyHashes                        [][]byte
	replays                          []replaySlot
	// replayIDs are the originals to read back (earlier transactions').
	replayIDs []string
}

// decide decides each submission: replays, conflicts, new rows. heads
// (updated in place) and known are what the transaction found; now stamps
// the rows.
func decide(subs []*submission, heads map[domain.Room]head, known map[idemKey]idemHit, now time.Time) plan {
	p := plan{results: make([][]AppendResult, len(subs)), subErrs: make([]error, len(subs)), heads: heads}
	p.rows.at = now
	if known == nil {
		known = map[idemKey]idemHit{}
	}
	for si, sub := range subs {
		// Tentative state for this submission; merged only if accepted.
		local := map[idemKey]idemHit{}
		var conflict error
		for ri, pr := range sub.reqs {
			if pr.req.IdempotencyKey == "" {
				continue
			}
			k := idemKey{pr.req.Producer, pr.req.IdempotencyKey}
			hit, ok := known[k]
			if !ok {
				hit, ok = local[k]
			}
			if ok {
				if !bytes.Equal(hit.contentHash, pr.contentHash) {
					conflict = &domain.Error{Code: domain.CodeConflict, Message: fmt.Sprintf("idempotency key %q was already used with different content", k.key)}
					if len(sub.reqs) > 1 {
						conflict = fmt.Errorf("event %d: %w", ri, conflict)
					}
					break
				}
				continue
			}
			local[k] = idemHit{contentHash: pr.contentHash, eventID: pr.eventID.String()}
		}
		if conflict != nil {
			p.subErrs[si] = conflict
			continue
		}
		p.results[si] = make([]AppendResult, len(sub.reqs))
		for ri, pr := range sub.reqs {
			id := pr.eventID.String()
			if pr.req.IdempotencyKey != "" {
				k := idemKey{pr.req.Producer, pr.req.IdempotencyKey}
				if hit, ok := known[k]; ok {
					p.replays = append(p.replays, replaySlot{sub: si, req: ri, replayOf: hit.eventID})
					p.replayIDs = append(p.replayIDs, hit.eventID)
					continue
				}
				if hit := local[k]; hit.eventID != id {
					// A duplicate of an earlier request in this
					// submission: same result, nothing new written.
					p.replays = append(p.replays, replaySlot{sub: si, req: ri, replayOf: hit.eventID})
					continue
				}
				p.keyProducers = append(p.keyProducers, k.producer)
				p.keyKeys = append(p.keyKeys, k.key)
				p.keyEvents = append(p.keyEvents, id)
				p.keyHashes = append(p.keyHashes, pr.contentHash)
			}
			res := AppendResult{EventID: id, At: now, Deliveries: make([]RoomSeq, len(pr.req.Rooms))}
			for i, room := range pr.req.Rooms {
				h := heads[room]
				prev := h.hash
				if h.seq == 0 {
					prev = genesisHash
				}
				seq := h.seq + 1
				sum := rowHash(prev, seq, pr.eventID, string(room), pr.req.Type, pr.req.Producer, now, pr.payload)
				heads[room] = head{seq: seq, hash: sum}
				r := &p.rows
				r.ids = append(r.ids, id)
				r.rooms = append(r.rooms, string(room))
				r.seqs = append(r.seqs, seq)
				r.types = append(r.types, pr.req.Type)
				r.payloads = append(r.payloads, pr.payload)
				r.producers = append(r.producers, pr.req.Producer)
				r.prev = append(r.prev, prev)
				r.hash = append(r.hash, sum)
				res.Deliveries[i] = RoomSeq{Room: room, Seq: seq}
			}
			p.results[si][ri] = res
		}
		for k, v := range local {
			known[k] = v
		}
	}
	return p
}

// lockAndRead takes the locks of ls in q's transaction, opening it first
// (BEGIN) with ownTx, and reads the rooms' heads and the known idempotency
// keys: one round trip. The reads run after the locks in the same
// pipeline, each with a fresh snapshot (read committed), so they see every
// earlier writer's commit.
func (s *Store) lockAndRead(ctx context.Context, q batchSender, ls lockSet, ownTx bool) (map[domain.Room]head, map[idemKey]idemHit, error) {
	b := &pgx.Batch{}
	if ownTx {
		s.queueBegin(b)
	}
	b.Queue(lockKeysSQL, ls.keys)
	b.Queue("SELECT room, seq, hash FROM room_heads WHERE room = ANY($1::text[])", ls.rooms)
	var idemProducers, idemKeys []string
	for k := range ls.idem {
		idemProducers = append(idemProducers, k.producer)
		idemKeys = append(idemKeys, k.key)
	}
	if len(ls.idem) > 0 {
		b.Queue(`SELECT k.producer, k.key, k.content_hash, k.event_id::text
			FROM idempotency_keys k
			JOIN unnest($1::text[], $2::text[]) AS u(producer, key) ON k.producer = u.producer AND k.key = u.key`,
			idemProducers, idemKeys)
	}
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if ownTx {
		if err := execBegin(br); err != nil {
			return nil, nil, err
		}
	}
	if _, err := br.Exec(); err != nil {
		return nil, nil, classify("append: lock rooms", err)
	}
	heads := make(map[domain.Room]head, len(ls.rooms))
	var (
		room string
		h    head
	)
	// Query's error is also its rows' error, which ForEachRow returns.
	rows, _ := br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&room, &h.seq, &h.hash}, func() error {
		heads[domain.Room(room)] = h // Scan copies a bytea
		return nil
	}); err != nil {
		return nil, nil, classify("append: read heads", err)
	}
	known := map[idemKey]idemHit{}
	if len(ls.idem) > 0 {
		var (
			k   idemKey
			hit idemHit
		)
		rows, _ := br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&k.producer, &k.key, &hit.contentHash, &hit.eventID}, func() error {
			known[k] = hit
			return nil
		}); err != nil {
			return nil, nil, classify("append: read idempotency keys", err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, classify("append: lock and read", err)
	}
	return heads, known, nil
}

// queueBegin queues the statements that open a group commit's transaction
// that spans more than one round trip.
func (s *Store) queueBegin(b *pgx.Batch) {
	b.Queue("BEGIN")
	b.Queue("SELECT set_config('synchronous_commit', $1, true)", s.syncCommitSetting())
}

// syncCommitSetting is the synchronous_commit of the store's group commits:
// on, unless Config.AsyncCommit (NOT durable) turned it off.
func (s *Store) syncCommitSetting() string {
	if s.cfg.AsyncCommit {
		return "off"
	}
	return "on"
}

// execBegin reads the results of queueBegin's statements.
func execBegin(br pgx.BatchResults) error {
	if _, err := br.Exec(); err != nil {
		return classify("append: begin", err)
	}
	if _, err := br.Exec(); err != nil {
		return classify("append: set synchronous_commit", err)
	}
	return nil
}

// appendInTx writes subs in a transaction. It returns per-submission
// results and errors (a submission with an idempotency conflict is
// skipped, the others proceed) or a fatal error, after which the
// transaction must be rolled back.
//
// Without ownTx, q is the caller's transaction (AppendTx). With ownTx, q
// is a connection outside any transaction, and appendInTx opens the
// transaction and commits it (BEGIN and COMMIT, or for one round trip the
// pipeline's implicit transaction); a nil error then means the transaction
// committed durably. It costs two round trips (lock and read,
// then write and commit), or one when the store remembers every room's
// head (heads.go) and wantFast is set; such a one-round-trip attempt returns
// an error wrapping errStaleHeads, with nothing written, when what it
// remembered was stale.
func (s *Store) appendInTx(ctx context.Context, q batchSender, subs []*submission, ownTx, wantFast bool) ([][]AppendResult, []error, appended, error) {
	ls := collectLocks(subs)
	now := s.now()
	var (
		p    plan
		fast bool
	)
	// The group commit marks its rooms busy in the head cache while it
	// writes, and remembers the heads it leaves.
	remember := ownTx && s.heads != nil
	if remember {
		var cached map[domain.Room]head
		cached, fast = s.heads.begin(ls.rooms)
		if fast = fast && wantFast; fast {
			p = decide(subs, maps.Clone(cached), nil, now)
			p.base = cached
		}
	}
	if !fast {
		heads, known, err := s.lockAndRead(ctx, q, ls, ownTx)
		if err != nil {
			if remember {
				s.heads.end(ls.rooms, nil)
			}
			return nil, nil, appended{}, err
		}
		p = decide(subs, heads, known, now)
	}
	out, err := s.write(ctx, q, subs, ls, p, ownTx)
	out.roundTrips = 1
	if !fast {
		out.roundTrips = 2
	}
	if remember {
		var left map[domain.Room]head // nil: forget the rooms
		if err == nil {
			left = p.heads
		}
		s.heads.end(ls.rooms, left)
	}
	if err != nil {
		return nil, nil, appended{}, err
	}
	return p.results, p.subErrs, out, nil
}

// write sends p's writes in one round trip: rows, heads, keys, replay
// lookups, the hand-off read, and (AppendTx) the NOTIFY or (group commit
// after lockAndRead) the COMMIT. A one-round-trip append (p.base set,
// always a group commit) runs in the pipeline's implicit transaction: its
// locks go first (implicitLockSQL), roomlog_advance_heads checks p.base
// (see appendInTx), and the batch's Sync commits.
func (s *Store) write(ctx context.Context, q batchSender, subs []*submission, ls lockSet, p plan, ownTx bool) (appended, error) {
	fast := p.base != nil
	rows := &p.rows
	var out appended
	handoff := false
	if ownTx && len(rows.ids) > 0 && s.cfg.Handoff != nil && s.cfg.HandoffAfter != nil {
		out.handoffAfter, handoff = s.cfg.HandoffAfter()
		out.handoffTried = handoff
	}
	b := &pgx.Batch{}
	if fast {
		b.Queue(implicitLockSQL, ls.keys, s.syncCommitSetting())
	}
	// The rooms that get rows, with their heads after and (fast, for
	// roomlog_advance_heads to check) before.
	var hr []string
	var hs, hos []int64
	var hh, hoh [][]byte
	for _, r := range ls.rooms {
		h := p.heads[domain.Room(r)]
		if h.seq == 0 {
			continue
		}
		if fast {
			o := p.base[domain.Room(r)]
			if h.seq == o.seq {
				continue // no rows for this room
			}
			hos, hoh = append(hos, o.seq), append(hoh, o.hash)
		}
		hr, hs, hh = append(hr, r), append(hs, h.seq), append(hh, h.hash)
	}
	if fast && len(hr) > 0 {
		b.Queue("SELECT roomlog_advance_heads($1, $2, $3, $4, $5)", hr, hos, hoh, hs, hh)
	}
	if len(rows.ids) > 0 {
		insert := insertEventsSQL
		if handoff {
			// The hand-off needs each row's place in the log; the rest of
			// the row is in memory.
			insert = insertEventsSQL + ` RETURNING room, seq, id, txid`
		}
		b.Queue(insert, rows.ids, rows.rooms, rows.seqs, rows.types, rows.payloads, rows.producers, rows.at, rows.prev, rows.hash)
		if !fast {
			b.Queue(`INSERT INTO room_heads (room, seq, hash)
				SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[])
				ON CONFLICT (room) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, updated_at = now()`,
				hr, hs, hh)
		}
	}
	if len(p.keyKeys) > 0 {
		// With fast, a key already stored breaks the primary key: the
		// append is retried the two-round-trip way, which finds it.
		b.Queue(`INSERT INTO idempotency_keys (producer, key, event_id, content_hash)
			SELECT p, k, e::uuid, h FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS u(p, k, e, h)`,
			p.keyProducers, p.keyKeys, p.keyEvents, p.keyHashes)
	}
	if len(p.replayIDs) > 0 {
		b.Queue(`SELECT event_id::text, room, seq, created_at FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY id`, p.replayIDs)
	}
	// The hand-off read: if no transaction that could still write events is
	// older than this one (oldestWriterSQL; see horizon.go), every event
	// with a smaller transaction id is committed, and the events after the
	// fan-out's position from those transactions, read by the next
	// statement with a later snapshot, followed by this transaction's own
	// rows, are a complete stretch of the tail, final as soon as this
	// transaction commits. Otherwise the tail delivers them.
	if handoff {
		b.Queue(oldestWriterSQL, roomLockClass)
		b.Queue(`SELECT `+deliveryColumns+`
			FROM events e
			WHERE (e.txid, e.id) > ($1::text::xid8, $2::int8)
			  AND e.txid < pg_current_xact_id()
			ORDER BY e.txid, e.id
			LIMIT $3`, strconv.FormatUint(out.handoffAfter.Txid, 10), out.handoffAfter.ID, handoffLimit)
	}
	// The caller's transaction (AppendTx, which never hands off) notifies
	// at its commit; the group commit notifies after it, outside the
	// transaction (notify.go).
	notify := len(rows.ids) > 0 && !ownTx
	if notify {
		b.Queue("SELECT pg_notify($1, $2)", NotifyChannel, s.noticePayload(false))
	}
	out.notify = ownTx && len(rows.ids) > 0
	if ownTx && !fast {
		b.Queue("COMMIT")
	}
	if b.Len() == 0 {
		return out, nil
	}
	br := q.SendBatch(ctx, b)
	defer br.Close()
	// Every statement before COMMIT: with fast, a rejected head check or
	// a stored idempotency key means the remembered state was stale.
	check := func(err error) error {
		var pgErr *pgconn.PgError
		if fast && errors.As(err, &pgErr) && (pgErr.Code == headsMovedCode || pgErr.Code == uniqueViolation) {
			return fmt.Errorf("%w: %w", errStaleHeads, err)
		}
		return err
	}
	if fast {
		if _, err := br.Exec(); err != nil {
			return appended{}, classify("append: lock rooms", err)
		}
		if len(hr) > 0 {
			if _, err := br.Exec(); err != nil {
				return appended{}, check(classify("append: advance heads", err))
			}
		}
	}
	var own []domain.Delivery
	if len(rows.ids) > 0 && handoff {
		var err error
		if own, err = ownDeliveries(br, rows); err != nil {
			return appended{}, check(err)
		}
	} else if len(rows.ids) > 0 {
		if _, err := br.Exec(); err != nil {
			return appended{}, check(classify("append: insert events", err))
		}
	}
	if len(rows.ids) > 0 && !fast {
		if _, err := br.Exec(); err != nil {
			return appended{}, classify("append: update heads", err)
		}
	}
	if len(p.keyKeys) > 0 {
		if _, err := br.Exec(); err != nil {
			return appended{}, check(classify("append: insert idempotency keys", err))
		}
	}
	if len(p.replayIDs) > 0 {
		if err := readReplays(br, subs, p); err != nil {
			return appended{}, err
		}
	}
	if handoff {
		var oldest bool
		if err := br.QueryRow().Scan(&oldest); err != nil {
			return appended{}, classify("append: check writer horizon", err)
		}
		rows, _ := br.Query() // its error is the rows' error too
		evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Delivery, error) { return scanDelivery(r) })
		if err != nil {
			return appended{}, classify("append: read hand-off", err)
		}
		// As many rows as the limit: the stretch may go on; the tail
		// delivers.
		if oldest && len(evs) < handoffLimit {
			out.handoff = append(evs, own...)
		}
	}
	if notify {
		if _, err := br.Exec(); err != nil {
			return appended{}, classify("append: notify", err)
		}
	}
	if ownTx && !fast {
		if _, err := br.Exec(); err != nil {
			return appended{}, commitFailed(err)
		}
	}
	// Close reads the Sync's answer: for a one-round-trip append, the
	// outcome of its implicit transaction's commit.
	if err := br.Close(); err != nil {
		if ownTx {
			return appended{}, commitFailed(err)
		}
		return appended{}, classify("append: write", err)
	}
	if err := fillDuplicates(p); err != nil {
		return appended{}, err
	}
	return out, nil
}

// commitFailed is the error of a group commit whose COMMIT (or Sync) failed.
// The outcome is unknown unless the server answered with an error (the
// connection may have died after the server committed): it is reported as
// unavailable, never as success. Retrying with the same idempotency key is
// safe.
func commitFailed(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classify("append: commit", err)
	}
	return unavailable("append: commit", err)
}

// readReplays reads the originals of p's replayed requests (the statement
// write queued) and fills in their results.
func readReplays(br pgx.BatchResults, subs []*submission, p plan) error {
	type orig struct {
		at    time.Time
		rooms map[domain.Room]int64
	}
	origs := map[string]*orig{}
	var (
		id, room string
		seq      int64
		at       time.Time
	)
	rows, _ := br.Query() // its error is the rows' error too
	if _, err := pgx.ForEachRow(rows, []any{&id, &room, &seq, &at}, func() error {
		o := origs[id]
		if o == nil {
			o = &orig{at: at, rooms: map[domain.Room]int64{}}
			origs[id] = o
		}
		o.rooms[domain.Room(room)] = seq
		return nil
	}); err != nil {
		return classify("append: read replayed events", err)
	}
	for _, sl := range p.replays {
		pr := subs[sl.sub].reqs[sl.req]
		o := origs[sl.replayOf]
		if o == nil {
			continue // a within-batch duplicate; see fillDuplicates
		}
		res := AppendResult{EventID: sl.replayOf, At: o.at.UTC(), Replayed: true, Deliveries: make([]RoomSeq, len(pr.req.Rooms))}
		for i, room := range pr.req.Rooms {
			res.Deliveries[i] = RoomSeq{Room: room, Seq: o.rooms[room]}
		}
		p.results[sl.sub][sl.req] = res
	}
	return nil
}

// fillDuplicates gives each within-batch duplicate the result of the
// request it repeats (the common batch has none: it skips building the
// index).
func fillDuplicates(p plan) error {
	if len(p.replays) == len(p.replayIDs) {
		return nil
	}
	byID := map[string]AppendResult{}
	for _, rs := range p.results {
		for _, r := range rs {
			if r.EventID != "" && !r.Replayed {
				byID[r.EventID] = r
			}
		}
	}
	for _, sl := range p.replays {
		if p.results[sl.sub][sl.req].EventID == "" {
			r, ok := byID[sl.replayOf]
			if !ok {
				return errors.New("append: idempotent duplicate lost its original")
			}
			r.Replayed = true
			p.results[sl.sub][sl.req] = r
		}
	}
	return nil
}

// ownDeliveries reads the INSERT … RETURNING room, seq, id, txid result
// of rows and returns
// the rows as the log will deliver them, in tail order.
func ownDeliveries(br pgx.BatchResults, rows *newRows) ([]domain.Delivery, error) {
	type key struct {
		room string
		seq  int64
	}
	at := make(map[key]int, len(rows.ids))
	for i := range rows.ids {
		at[key{rows.rooms[i], rows.seqs[i]}] = i
	}
	own := make([]domain.Delivery, len(rows.ids))
	res, _ := br.Query() // its error is the rows' error too
	var (
		room    string
		seq, id int64
		txid    pgtype.Uint64
		n       int
	)
	_, err := pgx.ForEachRow(res, []any{&room, &seq, &id, &txid}, func() error {
		i, ok := at[key{room, seq}]
		if !ok || !txid.Valid || own[i].Room != "" {
			return fmt.Errorf("append: insert returned an unexpected row (%s, %d)", room, seq)
		}
		own[i] = domain.Delivery{
			Event: domain.Event{ID: rows.ids[i], Type: rows.types[i], Payload: rows.payloads[i], Producer: rows.producers[i], OccurredAt: rows.at},
			Room:  domain.Room(rows.rooms[i]), Seq: seq, Position: domain.Position{Txid: txid.Uint64, ID: id},
		}
		n++
		return nil
	})
	if err != nil {
		return nil, classify("append: insert events", err)
	}
	if n != len(rows.ids) {
		return nil, fmt.Errorf("append: insert returned %d rows of %d", n, len(rows.ids))
	}
	slices.SortFunc(own, func(a, b domain.Delivery) int { return cmp.Compare(a.Position.ID, b.Position.ID) })
	return own, nil
}

// newEventID returns a UUIDv7: time-ordered, so the event_id index grows at
// its right edge instead of taking random page writes (a random UUIDv4 cost
// 40% of a batch insert in the append benchmark).
func newEventID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// hasNULEscape reports whether the JSON text b contains the escape \u0000
// (an escaped backslash followed by "u0000" does not count).
func hasNULEscape(b []byte) bool {
	for i := 0; i+5 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] == 'u' && string(b[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}
