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
// remembered heads and sends the whole transaction in one pipeline: BEGIN,
// the room locks, roomlog_advance_heads (which checks, under the locks, that
// each head is still exactly what the writer built on, and raises RLH01 if
// not), the rows, COMMIT. A failed check aborts the transaction with nothing
// written; the writer forgets those rooms and appends again the
// two-round-trip way (errStaleHeads). So what the cache holds never decides
// a seq or a hash: the check inside the transaction does.
//
// Two writers of one store may commit to the same room at once. The first
// to plan a commit leaves its tentative heads in the cache at once, and the
// second builds on them: the room lock orders the two transactions, and the
// second's check passes only if the first committed. Had the second built
// on the committed head instead, its check would always fail behind the
// first.

// headCacheRooms bounds the rooms a store remembers heads of (about 100
// bytes each). Past it, a planned commit's new rooms evict arbitrary old
// ones; an evicted room costs its next append one round trip.
const headCacheRooms = 1 << 16

// headCache holds the heads the store's own commits left, or are about to
// leave, per room.
type headCache struct {
	mu sync.Mutex
	m  map[domain.Room]head
}

func newHeadCache() *headCache {
	return &headCache{m: map[domain.Room]head{}}
}

// plan calls decide with the remembered heads of rooms, if every room is
// remembered, and reserves the heads decide leaves (their rooms' new last
// rows) as the cache's new entries, all under the cache's lock, so that a
// concurrent plan builds on them. It returns decide's result and the heads
// the transaction must find (roomlog_advance_heads' old heads), or ok false
// when a room is not remembered.
func (c *headCache) plan(rooms []string, decide func(heads map[domain.Room]head) plan) (p plan, old map[domain.Room]head, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old = make(map[domain.Room]head, len(rooms))
	for _, r := range rooms {
		h, found := c.m[domain.Room(r)]
		if !found {
			return plan{}, nil, false
		}
		old[domain.Room(r)] = h
	}
	heads := make(map[domain.Room]head, len(old))
	for r, h := range old {
		heads[r] = h
	}
	p = decide(heads)
	for r, h := range p.heads {
		if h.seq != old[r].seq {
			c.m[r] = h
		}
	}
	return p, old, true
}

// learn remembers heads that a committed transaction left (seq 0: the room
// has no rows yet, nothing to remember). It replaces an entry only with a
// later seq, so a plan already built on top of this commit is kept.
func (c *headCache) learn(heads map[domain.Room]head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r, h := range heads {
		if h.seq == 0 {
			continue
		}
		if cur, ok := c.m[r]; ok && cur.seq >= h.seq {
			continue
		}
		if _, ok := c.m[r]; !ok && len(c.m) >= headCacheRooms {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[r] = h
	}
}

// forget drops rooms, whose remembered heads a failed transaction may have
// left wrong: their next append reads the heads again.
func (c *headCache) forget(rooms []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rooms {
		delete(c.m, domain.Room(r))
	}
}
