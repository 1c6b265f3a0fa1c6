package projector

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// RecentLog is what Recent reads when memory cannot answer, and how it
// learns each room's head. *eventstore.Store satisfies it.
type RecentLog interface {
	// ReadRooms is eventstore.Store.ReadRooms.
	ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, error)
	// Heads returns the last seq of each room that has events.
	Heads(ctx context.Context, rooms []domain.Room) (map[domain.Room]int64, error)
}

// Recent keeps the latest events of recently active rooms in memory and
// answers catch-up reads (ReadRooms) from it when it holds the whole
// answer, otherwise from the log. Add feeds it; wire it to Fanout.OnEmit,
// which sees every event once, in tail order, so each room's events arrive
// in seq order with no gap.
//
// An answer from memory is the one the log would give: Recent first reads
// the rooms' heads from the log (one small query), and answers from memory
// only if, for every room, it holds every event from the cursor up to
// that head; pages end at the head even if later events have arrived. A
// room whose stream skipped a seq (the fan-out started later, or an event
// could not be emitted) starts again from the event after the gap.
//
// Memory is bounded: at most MaxPerRoom events per room (the oldest go
// first) and about MaxBytes in all (the least recently appended rooms go
// first). It is safe for concurrent use.
type Recent struct {
	// Log answers what memory cannot and gives the heads. Required.
	Log RecentLog
	// MaxBytes bounds the memory held, counting each event's payload,
	// strings and a fixed overhead. Zero or less: DefaultRecentBytes.
	MaxBytes int64
	// MaxPerRoom bounds the events held per room. Zero or less:
	// eventstore.MaxRoomReadLimit, one whole catch-up page.
	MaxPerRoom int

	mu    sync.Mutex
	rooms map[domain.Room]*recentRoom
	// lru orders the rooms by their last Add, most recent first.
	lru   list.List
	bytes int64

	hits, misses atomic.Uint64
}

// DefaultRecentBytes is Recent's default memory bound.
const DefaultRecentBytes = 64 << 20

// recentOverhead approximates what one held event costs beyond its
// payload and strings: the Delivery struct and its share of the slice.
const recentOverhead = 160

type recentRoom struct {
	room domain.Room
	// evs hold consecutive seqs: evs[i].Seq == evs[0].Seq + i.
	evs   []domain.Delivery
	bytes int64
	elem  *list.Element
}

func (rm *recentRoom) first() int64 { return rm.evs[0].Seq }
func (rm *recentRoom) last() int64  { return rm.evs[len(rm.evs)-1].Seq }

func eventCost(d domain.Delivery) int64 {
	return int64(len(d.Payload)+len(d.ID)+len(d.Type)+len(d.Producer)) + recentOverhead
}

func (r *Recent) limits() (maxBytes int64, perRoom int) {
	maxBytes, perRoom = r.MaxBytes, r.MaxPerRoom
	if maxBytes <= 0 {
		maxBytes = DefaultRecentBytes
	}
	if perRoom <= 0 {
		perRoom = eventstore.MaxRoomReadLimit
	}
	return maxBytes, perRoom
}

// Add records an emitted event. Events of one room must come in seq order
// (Fanout.OnEmit's); one at or below the room's last is ignored.
func (r *Recent) Add(d domain.Delivery) {
	maxBytes, perRoom := r.limits()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms == nil {
		r.rooms = map[domain.Room]*recentRoom{}
	}
	rm := r.rooms[d.Room]
	switch {
	case rm == nil:
		rm = &recentRoom{room: d.Room}
		rm.elem = r.lru.PushFront(rm)
		r.rooms[d.Room] = rm
	case d.Seq <= rm.last():
		return
	case d.Seq != rm.last()+1:
		r.dropOldest(rm, len(rm.evs)) // a gap: what is held no longer leads to d
		fallthrough
	default:
		r.lru.MoveToFront(rm.elem)
	}
	rm.evs = append(rm.evs, d)
	c := eventCost(d)
	rm.bytes += c
	r.bytes += c
	if len(rm.evs) > perRoom {
		r.dropOldest(rm, len(rm.evs)-perRoom)
	}
	for r.bytes > maxBytes {
		back := r.lru.Back().Value.(*recentRoom)
		if back == rm {
			// The room just added to is the only one left: shed its
			// older half.
			r.dropOldest(rm, max(len(rm.evs)/2, 1))
			if len(rm.evs) == 0 {
				r.forget(rm)
			}
			continue
		}
		r.forget(back)
	}
}

// dropOldest drops rm's n oldest events.
func (r *Recent) dropOldest(rm *recentRoom, n int) {
	for _, d := range rm.evs[:n] {
		c := eventCost(d)
		rm.bytes -= c
		r.bytes -= c
	}
	clear(rm.evs[:n]) // let the payloads go
	rm.evs = rm.evs[n:]
}

// forget drops a room and everything held for it.
func (r *Recent) forget(rm *recentRoom) {
	r.bytes -= rm.bytes
	r.lru.Remove(rm.elem)
	delete(r.rooms, rm.room)
}

// ReadRooms implements the catch-up read of eventstore.Store.ReadRooms,
// with the same answer: from memory when it holds every event each room's
// page needs, else from Log.
func (r *Recent) ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, error) {
	rooms := make([]domain.Room, 0, len(cursors))
	for room := range cursors {
		rooms = append(rooms, room)
	}
	heads, err := r.Log.Heads(ctx, rooms)
	if err != nil {
		return nil, fmt.Errorf("recent: read heads: %w", err)
	}
	if pages, ok := r.fromMemory(cursors, heads, limit, opts); ok {
		r.hits.Add(1)
		return pages, nil
	}
	r.misses.Add(1)
	return r.Log.ReadRooms(ctx, cursors, limit, opts)
}

// fromMemory builds the pages ReadRooms would read from the log, if
// memory holds them.
func (r *Recent) fromMemory(cursors map[domain.Room]int64, heads map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, bool) {
	if limit <= 0 || limit > eventstore.MaxRoomReadLimit {
		limit = eventstore.MaxRoomReadLimit
	}
	maxBytes := int64(-1)
	if opts != nil && opts.MaxBytes > 0 {
		maxBytes = int64(opts.MaxBytes)
	}
	pages := make([]eventstore.Page, 0, len(cursors))
	r.mu.Lock()
	defer r.mu.Unlock()
	for room, after := range cursors {
		after = max(after, 0)
		head := heads[room]
		p := eventstore.Page{Room: room, Head: head}
		if after >= head {
			// Nothing after the cursor: no event needed.
			p.Events = []domain.Delivery{}
			pages = append(pages, p)
			continue
		}
		rm := r.rooms[room]
		if rm == nil || rm.first() > after+1 || rm.last() < head {
			return nil, false
		}
		end := min(head, after+int64(limit))
		src := rm.evs[after+1-rm.first() : end-rm.first()+1]
		var kept int64
		n := len(src)
		for i, d := range src {
			if maxBytes >= 0 && i > 0 && kept >= maxBytes {
				n = i
				break
			}
			kept += int64(len(d.Payload))
		}
		p.Events = slices.Clone(src[:n])
		p.More = p.Events[n-1].Seq < head
		pages = append(pages, p)
	}
	slices.SortFunc(pages, func(a, b eventstore.Page) int { return cmp.Compare(a.Room, b.Room) })
	return pages, true
}

// RecentStats are Recent's counters.
type RecentStats struct {
	// Hits and Misses count ReadRooms answered from memory and from the
	// log.
	Hits, Misses uint64
	// Rooms and Bytes are what memory holds now.
	Rooms int
	Bytes int64
}

// Stats returns the counters.
func (r *Recent) Stats() RecentStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RecentStats{Hits: r.hits.Load(), Misses: r.misses.Load(), Rooms: len(r.rooms), Bytes: r.bytes}
}
