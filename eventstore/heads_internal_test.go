package eventstore

import (
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// TestHeadCache: a commit may build on remembered heads only when every
// room is remembered and no other commit of the store is writing to it;
// a committed transaction's heads are remembered (never moving a head
// back), a failed one's rooms forgotten; the cache stays within its bound.
func TestHeadCache(t *testing.T) {
	c := newHeadCache()
	rooms := func(rs ...string) []string { return rs }
	h := func(seq int64) head { return head{seq: seq, hash: []byte{byte(seq)}} }

	if _, ok := c.begin(rooms("a")); ok {
		t.Fatal("built on a room it never saw")
	}
	c.end(rooms("a"), map[domain.Room]head{"a": h(3), "b": {}})
	if got, ok := c.begin(rooms("a")); !ok || got["a"].seq != 3 {
		t.Fatalf("after a commit: %v %v, want seq 3", got, ok)
	}
	// "a" is busy now: a second commit to it reads the heads.
	if _, ok := c.begin(rooms("b", "a")); ok {
		t.Fatal("built on a room another commit is writing")
	}
	c.end(rooms("b", "a"), map[domain.Room]head{"a": h(5), "b": h(1)}) // the second ends first
	c.end(rooms("a"), map[domain.Room]head{"a": h(4)})                 // then the first
	if got, ok := c.begin(rooms("a", "b")); !ok || got["a"].seq != 5 || got["b"].seq != 1 {
		t.Fatalf("after both: %v %v, want a at 5 (never moved back), b at 1", got, ok)
	}
	c.end(rooms("a", "b"), nil) // failed
	if _, ok := c.begin(rooms("a")); ok {
		t.Fatal("built on a room a failed commit left")
	}
	c.end(rooms("a"), nil)
	if _, ok := c.begin(rooms("b")); ok {
		t.Fatal("remembered a room without rows (seq 0)")
	}
	c.end(rooms("b"), nil)
	if len(c.busy) != 0 {
		t.Fatalf("rooms still busy: %v", c.busy)
	}
	for i := range headCacheRooms + 10 {
		c.end(nil, map[domain.Room]head{domain.Room(fmt.Sprintf("room-%d", i)): h(1)})
	}
	if len(c.m) > headCacheRooms {
		t.Fatalf("cache holds %d rooms, bound %d", len(c.m), headCacheRooms)
	}
}
