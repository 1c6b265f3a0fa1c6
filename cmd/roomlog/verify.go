package main

import (
	"context"
	"fmt"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

func cmdVerify(ctx context.Context, args []string, e env) error {
	fs := newFlags("verify", e)
	dbFlag := fs.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	roomName := fs.String("room", "", "room to verify")
	all := fs.Bool("all", false, "verify every room")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*roomName == "") == !*all {
		fmt.Fprintln(e.stderr, "roomlog verify: give exactly one of -room or -all")
		return errUsage
	}
	s, closeStore, err := openStore(ctx, databaseURL(e, *dbFlag), e)
	if err != nil {
		return err
	}
	defer closeStore()
	bad, rooms, rows := 0, 0, int64(0)
	check := func(room domain.Room) error {
		res, err := s.Verify(ctx, room)
		if err != nil {
			return err
		}
		rooms++
		rows += res.Checked
		if res.OK {
			if !*all {
				fmt.Fprintf(e.stdout, "%s: ok, %d events checked\n", room, res.Checked)
			}
			return nil
		}
		bad++
		fmt.Fprintf(e.stdout, "%s: TAMPERED at seq %d: %s (%d events checked)\n", room, res.FirstBadSeq, res.Reason, res.Checked)
		return nil
	}
	if *all {
		after := ""
		for {
			list, err := s.Rooms(ctx, after, eventstore.MaxReadLimit)
			if err != nil {
				return err
			}
			for _, r := range list {
				if err := check(r); err != nil {
					return err
				}
			}
			if len(list) < eventstore.MaxReadLimit {
				break
			}
			after = string(list[len(list)-1])
		}
		fmt.Fprintf(e.stdout, "%d rooms, %d events checked, %d rooms tampered\n", rooms, rows, bad)
	} else {
		room, err := domain.ParseRoom(*roomName)
		if err != nil {
			return err
		}
		if err := check(room); err != nil {
			return err
		}
	}
	if bad > 0 {
		return exitCode(1)
	}
	return nil
}
