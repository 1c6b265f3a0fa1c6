package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// connectParallel is how many connections the load generator opens at
// once; closeParallel is how many it closes at once.
const (
	connectParallel = 64
	closeParallel   = 256
)

// inParallel runs f(i) for every i in [0, n), at most limit at a time.
// It stops starting new calls after the first error or when ctx ends,
// waits for those running, and returns the first error (ctx's error if it
// ended first).
func inParallel(ctx context.Context, n, limit int, f func(i int) error) error {
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i := range n {
		if first.Load() != nil || ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// dialSubscribed opens a Socket.IO connection to s as user and subscribes
// it (acked) to room; the connection is closed if subscribing fails.
func dialSubscribed(ctx context.Context, s *server, user, room string) (*sioConn, error) {
	sc, err := dialSIO(ctx, s.base, s.token(user))
	if err != nil {
		return nil, err
	}
	if err := sc.subscribe(room); err != nil {
		sc.ws.Close()
		return nil, err
	}
	return sc, nil
}

// dialRooms opens n subscribed connections to s, connection i as user
// user(i) in room room(i), connectParallel at a time, calling ready (if
// not nil) as soon as each is subscribed. It stops at the first failure
// and returns the connections made (nil where none was), with that
// failure.
func dialRooms(ctx context.Context, s *server, n int, user, room func(i int) string, ready func(i int, c *sioConn)) ([]*sioConn, error) {
	conns := make([]*sioConn, n)
	err := inParallel(ctx, n, connectParallel, func(i int) error {
		sc, err := dialSubscribed(ctx, s, user(i), room(i))
		if err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
		conns[i] = sc
		if ready != nil {
			ready(i, sc)
		}
		return nil
	})
	return conns, err
}

// closeAll closes every non-nil connection, closeParallel at a time.
func closeAll(conns []*sioConn) {
	_ = inParallel(context.Background(), len(conns), closeParallel, func(i int) error {
		if conns[i] != nil {
			conns[i].Close()
		}
		return nil
	})
}
