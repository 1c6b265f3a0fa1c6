package types

// Tests added by roomlog for its patch of the emitter (see ../../PATCHES.md):
// the behaviour the library relies on, kept while the storage changed.

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestEmitterPatchOrderAndArguments(t *testing.T) {
	e := NewEventEmitter()
	var got []string
	_ = e.On("a", func(args ...any) { got = append(got, "1:"+args[0].(string)) })
	_ = e.On("b", func(args ...any) { got = append(got, "b") })
	_ = e.On("a", func(args ...any) { got = append(got, "2:"+args[0].(string)) }, nil, func(...any) { got = append(got, "3") })
	e.Emit("a", "x")
	e.Emit("missing", "x")
	if want := []string{"1:x", "2:x", "3"}; !slices.Equal(got, want) {
		t.Fatalf("Emit called %v, want %v", got, want)
	}
	if n := e.ListenerCount("a"); n != 3 {
		t.Fatalf("ListenerCount(a) = %d, want 3 (nil listeners are skipped)", n)
	}
	if n := len(e.Listeners("a")); n != 3 {
		t.Fatalf("len(Listeners(a)) = %d, want 3", n)
	}
	if names := e.EventNames(); !slices.Equal(slices.Sorted(slices.Values(names)), []EventName{"a", "b"}) {
		t.Fatalf("EventNames() = %v, want a and b", names)
	}
}

func TestEmitterPatchOnce(t *testing.T) {
	e := NewEventEmitter()
	var once, always int
	_ = e.Once("ev", func(...any) { once++ })
	_ = e.On("ev", func(...any) { always++ })
	e.Emit("ev")
	e.Emit("ev")
	if once != 1 || always != 2 {
		t.Fatalf("once ran %d times (want 1), always %d (want 2)", once, always)
	}
	if n := e.ListenerCount("ev"); n != 1 {
		t.Fatalf("ListenerCount after the Once fired = %d, want 1", n)
	}
	// A Once listener that emits its own event again runs once.
	var nested int
	_ = e.Once("re", func(...any) { nested++; e.Emit("re") })
	e.Emit("re")
	if nested != 1 {
		t.Fatalf("re-entrant Once ran %d times, want 1", nested)
	}
}

func TestEmitterPatchRemove(t *testing.T) {
	e := NewEventEmitter()
	var calls []string
	var second EventListener
	first := func(...any) {
		calls = append(calls, "first")
		// Removing a listener during Emit does not change this Emit's
		// snapshot: second still runs now, and not on the next Emit.
		e.RemoveListener("ev", second)
	}
	second = func(...any) { calls = append(calls, "second") }
	_ = e.On("ev", first, second)
	e.Emit("ev")
	e.Emit("ev")
	if want := []string{"first", "second", "first"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	if e.RemoveListener("ev", second) {
		t.Fatal("RemoveListener of a listener already removed reported true")
	}
	if e.RemoveListener("none", first) || e.RemoveListener("ev", nil) {
		t.Fatal("RemoveListener of an unknown event or nil reported true")
	}
	// The event stays known with no listeners, as before the patch.
	if e.Len() != 1 || e.ListenerCount("ev") != 1 {
		t.Fatalf("Len %d, ListenerCount %d; want 1, 1", e.Len(), e.ListenerCount("ev"))
	}
	if !e.RemoveListener("ev", first) || e.ListenerCount("ev") != 0 || e.Len() != 1 {
		t.Fatalf("after removing the last listener: count %d, Len %d; want 0, 1", e.ListenerCount("ev"), e.Len())
	}
	if !e.RemoveAllListeners("ev") || e.RemoveAllListeners("ev") || e.Len() != 0 {
		t.Fatal("RemoveAllListeners: want true once, then false, and no events left")
	}
	_ = e.On("x", first)
	e.Clear()
	if e.Len() != 0 || e.Listeners("x") != nil {
		t.Fatal("Clear left listeners")
	}
}

func TestEmitterPatchPanicIsContained(t *testing.T) {
	e := NewEventEmitter()
	ran := false
	_ = e.On("ev", func(...any) { panic("listener bug") }, func(...any) { ran = true })
	e.Emit("ev")
	if !ran {
		t.Fatal("a panicking listener stopped the next one")
	}
}

// TestEmitterPatchConcurrent runs On, Once, Emit and RemoveListener from
// several goroutines (run with -race).
func TestEmitterPatchConcurrent(t *testing.T) {
	e := NewEventEmitter()
	var fired atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := EventName([]string{"a", "b"}[g%2])
			for range 200 {
				l := func(...any) { fired.Add(1) }
				_ = e.On(ev, l)
				_ = e.Once(ev, func(...any) { fired.Add(1) })
				e.Emit(ev)
				e.RemoveListener(ev, l)
				_ = e.ListenerCount(ev)
				_ = e.EventNames()
			}
		}()
	}
	wg.Wait()
	if fired.Load() == 0 {
		t.Fatal("no listener ran")
	}
	// Every On was removed and every Once fired (its own Emit ran after it
	// was added), so nothing is left.
	for _, ev := range []EventName{"a", "b"} {
		if n := e.ListenerCount(ev); n != 0 {
			t.Fatalf("%s: %d listeners left, want 0", ev, n)
		}
	}
}

// TestEmitterPatchFootprint is the point of the patch: an emitter with a
// few listeners is a handful of allocations, not several per listener.
func TestEmitterPatchFootprint(t *testing.T) {
	l := func(...any) {}
	allocs := testing.AllocsPerRun(100, func() {
		e := NewEventEmitter()
		for _, ev := range []EventName{"open", "packet", "data", "close", "error"} {
			_ = e.On(ev, l)
		}
		_ = e.Once("close", l)
	})
	// The emitter, its events array growing to 5 (3 allocations), one
	// listener array per event, and the Once's listener, sync.Once and
	// method value: about 14. The sync.Map-based emitter took about 45.
	if allocs > 20 {
		t.Fatalf("%.0f allocations for an emitter with 6 listeners, want at most 20", allocs)
	}
	e := NewEventEmitter()
	_ = e.On("ev", l)
	if a := testing.AllocsPerRun(100, func() { e.Emit("ev", 1) }); a > 1 {
		t.Fatalf("Emit allocates %.0f times, want at most 1 (the variadic arguments)", a)
	}
}
