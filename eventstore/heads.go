package eventstore

import (
	"sync"

	"github.com/roomlog/roomlog/domain"
)

// The one-round-trip append.
//
// An append must know each target room's head (seq and hash) before it can
// build its rows. Read from the database after the room locks, that costs a
// round trip of its own: lock and read, then insert and commit. But a
// group-commit writer usually appended to the same rooms a moment ago, so
// the store remembers the heads its own commits left (headCache). When every
// room of a group commit is remembered, the writer builds its rows on the
// remembered heads and sends the whole transaction in one pipeline, as the
// pipeline's implicit transaction (committed by its Sync): the room locks,
// roomlog_advance_heads (which checks, under the locks, that each head is
// still exactly what the writer built on, and raises RLH01 if not), the
// rows. A failed check aborts the transaction with nothing
// written; the writer forgets those rooms and appends again the
// two-round-trip way (errStaleHeads). So what the cache holds never decides
// a seq or a hash: the check inside the transaction does.
//
// Two writers of one store (Config.Writers) may commit to the same room
// at once. Had both built on the same remembered head, whichever took the
// room lock second would find the head moved and pay a third round trip.
// So a room that a commit of this store is writing is busy, and a commit
// that touches a busy room takes two round trips, reading the head once
// the room lock is its. (Waiting for the first commit to end instead, and building on the
// heads it left, made the two writers take turns: in the append benchmark
// p99 rose from 12 ms to 60–80 ms with 64 publishers.)

// headCacheRooms bounds the rooms a store remembers heads of (about 100
// bytes each). Past it, a commit's new rooms evict arbitrary old ones; an
// evicted room costs its next append one round trip.
const headCacheRooms = 1 << 16

// headCache holds the heads the store's own commits left, per room, and
// which rooms a commit of this store is writing.
type headCache struct {
	mu   sync.Mutex
	m    map[domain.Room]head
	busy map[domain.Room]int // commits writing to the room
}

func newHeadCache() *headCache {
	return &headCache{m: map[domain.Room]head{}, busy: map[domain.Room]int{}}
}

// begin marks rooms busy for a commit, until end. It returns the
// remembered heads of rooms (a copy) and true when every room is
// remembered and was not busy: the commit may build on them.
func (c *headCache) begin(rooms []string) (map[domain.Room]head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := true
	for _, r := range rooms {
		room := domain.Room(r)
		if _, found := c.m[room]; !found || c.busy[room] > 0 {
			ok = false
		}
		c.busy[room]++
	}
	if !ok {
		return nil, false
	}
	heads := make(map[domain.Room]head, len(rooms))
	for _, r := range rooms {
		heads[domain.Room(r)] = c.m[domain.Room(r)]
	}
	return heads, true
}

// end ends begin's mark on rooms. After a committed transaction, heads
// are the heads it left: they are remembered, an entry only ever replaced
// by a later seq (a room without rows, seq 0, is not remembered). After a
// failed one (heads nil) the rooms are forgotten, as their remembered
// heads may be stale, and their next commit reads them.
func (c *headCache) end(rooms []string, heads map[domain.Room]head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rooms {
		room := domain.Room(r)
		if c.busy[room]--; c.busy[room] <= 0 {
			delete(c.busy, room)
		}
		if heads == nil {
			delete(c.m, room)
		}
	}
	for r, h := range heads {
		if h.seq == 0 {
			continue
		}
		cur, ok := c.m[r]
		if ok && cur.seq >= h.seq {
			continue
		}
		if !ok && len(c.m) >= headCacheRooms {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[r] = h
	}
}
