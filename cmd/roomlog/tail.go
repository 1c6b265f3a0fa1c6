package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

func cmdTail(ctx context.Context, args []string, e env) error {
	fs := newFlags("tail", e)
	dbFlag := fs.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	roomName := fs.String("room", "", "follow one room (default: the whole log)")
	after := fs.Int64("after", 0, "with -room: start after this seq")
	fromBeginning := fs.Bool("from-beginning", false, "without -room: start at the beginning of the log instead of now")
	follow := fs.Bool("follow", true, "keep waiting for new events; -follow=false stops at the end")
	maxEvents := fs.Int("max", 0, "stop after this many events (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, closeStore, err := openStore(ctx, databaseURL(e, *dbFlag), e)
	if err != nil {
		return err
	}
	defer closeStore()

	wake := make(chan struct{}, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listening := make(chan struct{})
	if *follow {
		go func() {
			defer close(listening)
			s.Listen(lctx, func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			})
		}()
		defer func() { cancel(); <-listening }()
	}
	enc := json.NewEncoder(e.stdout)
	printed := 0
	emit := func(ds []domain.Delivery) (bool, error) {
		for _, d := range ds {
			if err := enc.Encode(toEventJSON(d)); err != nil {
				return false, err
			}
			printed++
			if *maxEvents > 0 && printed >= *maxEvents {
				return true, nil
			}
		}
		return false, nil
	}
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		case <-time.After(500 * time.Millisecond):
		}
		return true
	}

	if *roomName != "" {
		room, err := domain.ParseRoom(*roomName)
		if err != nil {
			return err
		}
		cursor := *after
		for {
			page, err := s.ReadRoom(ctx, room, cursor, eventstore.MaxReadLimit)
			if err != nil {
				return err
			}
			if done, err := emit(page.Events); err != nil || done {
				return err
			}
			if n := len(page.Events); n > 0 {
				cursor = page.Events[n-1].Seq
			}
			if page.More {
				continue
			}
			if !*follow || !wait() {
				return ignoreCancel(ctx)
			}
		}
	}

	if !*follow {
		// Stop at a consistent end: wait until every transaction that
		// might hold an event committed before now has finished, so the
		// tail below includes all of them.
		if _, err := s.AuditHorizon(ctx); err != nil {
			return err
		}
	}
	var pos domain.Position
	if !*fromBeginning {
		if pos, err = s.TailStart(ctx); err != nil {
			return err
		}
	}
	for {
		batch, err := s.ReadTail(ctx, pos, eventstore.MaxReadLimit)
		if err != nil {
			return err
		}
		if done, err := emit(batch); err != nil || done {
			return err
		}
		if n := len(batch); n > 0 {
			pos = batch[n-1].Position
			continue
		}
		if !*follow || !wait() {
			return ignoreCancel(ctx)
		}
	}
}

func ignoreCancel(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
