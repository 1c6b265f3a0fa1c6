package eventstore

import (
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// TestHeadCache: a plan needs every room remembered; it builds on what a
// concurrent plan reserved; learn never moves a head back; forget drops a
// room; the cache stays within its bound.
func TestHeadCache(t *testing.T) {
	bump := func(rooms ...domain.Room) func(map[domain.Room]head) plan {
		return func(heads map[domain.Room]head) plan {
			for _, r := range rooms {
				h := heads[r]
				heads[r] = head{seq: h.seq + 1, hash: []byte{byte(h.seq + 1)}}
			}
			return plan{heads: heads}
		}
	}
	c := newHeadCache()
	if _, _, ok := c.plan([]string{"a"}, bump("a")); ok {
		t.Fatal("planned on a room it never saw")
	}
	c.learn(map[domain.Room]head{"a": {seq: 3, hash: []byte{3}}, "b": {seq: 0}})
	if _, _, ok := c.plan([]string{"a", "b"}, bump("a", "b")); ok {
		t.Fatal("planned on a room without rows (seq 0 is not remembered)")
	}
	_, old, ok := c.plan([]string{"a"}, bump("a"))
	if !ok || old["a"].seq != 3 {
		t.Fatalf("first plan: ok %v old %v, want to build on seq 3", ok, old)
	}
	_, old, ok = c.plan([]string{"a"}, bump("a"))
	if !ok || old["a"].seq != 4 {
		t.Fatalf("second plan: ok %v old %v, want to build on the first's seq 4", ok, old)
	}
	c.learn(map[domain.Room]head{"a": {seq: 4, hash: []byte{4}}})
	if c.m["a"].seq != 5 {
		t.Fatalf("learn moved the head back to %d", c.m["a"].seq)
	}
	c.forget([]string{"a"})
	if _, _, ok := c.plan([]string{"a"}, bump("a")); ok {
		t.Fatal("planned on a forgotten room")
	}
	for i := range headCacheRooms + 10 {
		c.learn(map[domain.Room]head{domain.Room(fmt.Sprintf("room-%d", i)): {seq: 1, hash: []byte{1}}})
	}
	if len(c.m) > headCacheRooms {
		t.Fatalf("cache holds %d rooms, bound %d", len(c.m), headCacheRooms)
	}
}
