package types

import (
	"reflect"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/zishang520/socket.io/v3/pkg/log"
)

const (
	// Version current version number
	EventVersion = "0.0.3"
)

var eventsLog = log.NewLog("engine:events")

type (
	// EventName is just a type of string, it's the event name
	EventName string
	// Listener is the type of a Listener, it's a func which receives any,optional, arguments from the caller/emmiter
	EventListener func(...any)
	// Events the type for registered listeners, it's just a map[string][]func(...any)
	Events map[EventName][]EventListener
	// EventEmitter is the message/or/event manager
	EventEmitter interface {
		// AddListener is an alias for .On(eventName, listener).
		AddListener(EventName, ...EventListener) error
		// Emit fires a particular event,
		// Synchronously calls each of the listeners registered for the event named
		// eventName, in the order they were registered,
		// passing the supplied arguments to each.
		Emit(EventName, ...any)
		// EventNames returns an array listing the events for which the emitter has registered listeners.
		// The values in the array will be strings.
		EventNames() []EventName
		// ListenerCount returns the length of all registered listeners to a particular event
		ListenerCount(EventName) int
		// Listeners returns a copy of the array of listeners for the event named eventName.
		Listeners(EventName) []EventListener
		// On registers a particular listener for an event, func receiver parameter(s) is/are optional
		On(EventName, ...EventListener) error
		// Once adds a one time listener function for the event named eventName.
		// The next time eventName is triggered, this listener is removed and then invoked.
		Once(EventName, ...EventListener) error
		// RemoveAllListeners removes all listeners, or those of the specified eventName.
		// Note that it will remove the event itself.
		// Returns an indicator if event and listeners were found before the remove.
		RemoveAllListeners(EventName) bool
		// RemoveListener removes given listener from the event named eventName.
		// Returns an indicator whether listener was removed
		RemoveListener(EventName, EventListener) bool
		// Clear removes all events and all listeners, restores Events to an empty value
		Clear()
		// Len returns the length of all registered events
		Len() int
	}

	eventEntry struct {
		fn  EventListener
		ptr uintptr
	}

	// eventList is one event's listeners, in registration order.
	eventList struct {
		name    EventName
		entries []eventEntry
	}

	// emmiter keeps every event's listeners in one small slice under one
	// lock: an emitter holds a handful of events, so a linear search is
	// cheaper than a concurrent map, and it costs a few objects instead of
	// several per listener.
	emmiter struct {
		mu     sync.RWMutex
		events []eventList
	}
)

// CopyTo copies the event listeners to an EventEmitter
func (e Events) CopyTo(emitter EventEmitter) {
	if len(e) > 0 {
		// register the events to/with their listeners
		for evt, listeners := range e {
			if len(listeners) > 0 {
				_ = emitter.AddListener(evt, listeners...)
			}
		}
	}
}

// New returns a new, empty, EventEmitter
func NewEventEmitter() EventEmitter {
	return &emmiter{}
}

// find returns the index of evt's list, or -1. e.mu must be held.
func (e *emmiter) find(evt EventName) int {
	for i := range e.events {
		if e.events[i].name == evt {
			return i
		}
	}
	return -1
}

func (e *emmiter) addListeners(evt EventName, listeners []eventEntry) error {
	if len(listeners) == 0 {
		return nil
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(evt)
	if i < 0 {
		e.events = append(e.events, eventList{name: evt})
		i = len(e.events) - 1
	}
	e.events[i].entries = append(e.events[i].entries, listeners...)
	return nil
}

func (e *emmiter) AddListener(evt EventName, listeners ...EventListener) error {
	if len(listeners) == 0 {
		return nil
	}

	var buf [4]eventEntry
	events := buf[:0]
	for _, event := range listeners {
		if event != nil {
			events = append(events, eventEntry{fn: event, ptr: reflect.ValueOf(event).Pointer()})
		}
	}

	return e.addListeners(evt, events)
}

// Alias: [AddListener]
func (e *emmiter) On(evt EventName, listeners ...EventListener) error {
	return e.AddListener(evt, listeners...)
}

func (e *emmiter) Emit(evt EventName, data ...any) {
	// Call a snapshot, without the lock: a listener may add or remove
	// listeners.
	var buf [8]eventEntry
	e.mu.RLock()
	i := e.find(evt)
	if i < 0 {
		e.mu.RUnlock()
		return
	}
	snapshot := append(buf[:0], e.events[i].entries...)
	e.mu.RUnlock()

	for _, event := range snapshot {
		if event.fn != nil {
			func() {
				defer func() {
					if r := recover(); r != nil {
						// Prevent a panicking listener from crashing the emitter.
						eventsLog.Errorf("event listener panic recovered: %v\n%s", r, debug.Stack())
					}
				}()
				event.fn(data...)
			}()
		}
	}
}

func (e *emmiter) EventNames() []EventName {
	e.mu.RLock()
	defer e.mu.RUnlock()
	names := make([]EventName, len(e.events))
	for i, l := range e.events {
		names[i] = l.name
	}
	return names
}

func (e *emmiter) ListenerCount(evt EventName) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if i := e.find(evt); i >= 0 {
		return len(e.events[i].entries)
	}
	return 0
}

func (e *emmiter) Listeners(evt EventName) []EventListener {
	e.mu.RLock()
	defer e.mu.RUnlock()
	i := e.find(evt)
	if i < 0 {
		return nil
	}
	listeners := make([]EventListener, len(e.events[i].entries))
	for j, l := range e.events[i].entries {
		listeners[j] = l.fn
	}
	return listeners
}

type oneTimeListener struct {
	fired *sync.Once

	evt     EventName
	emitter *emmiter
	fn      EventListener
}

func (l *oneTimeListener) execute(vals ...any) {
	l.fired.Do(func() {
		// Remove before invoking so reentrant Emit cannot enter this sync.Once.
		l.emitter.RemoveListener(l.evt, l.fn)
		l.fn(vals...)
	})
}

func (e *emmiter) Once(evt EventName, listeners ...EventListener) error {
	if len(listeners) == 0 {
		return nil
	}

	var buf [4]eventEntry
	events := buf[:0]
	for _, event := range listeners {
		if event != nil {
			oneTime := &oneTimeListener{fired: &sync.Once{}, evt: evt, emitter: e, fn: event}
			events = append(events, eventEntry{fn: oneTime.execute, ptr: reflect.ValueOf(event).Pointer()})
		}
	}
	return e.addListeners(evt, events)
}

// RemoveListener removes the first listener for the event named eventName
// that is listener.
func (e *emmiter) RemoveListener(evt EventName, listener EventListener) bool {
	if listener == nil {
		return false
	}
	targetPtr := reflect.ValueOf(listener).Pointer()

	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(evt)
	if i < 0 {
		return false
	}
	entries := e.events[i].entries
	for j := range entries {
		if entries[j].ptr == targetPtr {
			// Emit and Listeners copy under the lock: deleting in place is safe.
			e.events[i].entries = slices.Delete(entries, j, j+1)
			return true
		}
	}
	return false
}

func (e *emmiter) RemoveAllListeners(evt EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(evt)
	if i < 0 {
		return false
	}
	e.events = slices.Delete(e.events, i, i+1)
	return true
}

func (e *emmiter) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = nil
}

func (e *emmiter) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.events)
}
