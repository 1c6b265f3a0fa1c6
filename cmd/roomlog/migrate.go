package main

import (
	"context"
	"fmt"

	"github.com/roomlog/roomlog/eventstore"
)

func cmdMigrate(_ context.Context, args []string, e env) error {
	fs := newFlags("migrate", e)
	dbFlag := fs.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	steps := fs.Int("steps", 0, "with down: how many migrations to revert (default all)")
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "usage: roomlog migrate up|down|status [-steps N] [-database-url URL]")
		return errUsage
	}
	dir := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	u := databaseURL(e, *dbFlag)
	switch dir {
	case "up":
		if err := eventstore.MigrateUp(u); err != nil {
			return err
		}
	case "down":
		if err := eventstore.MigrateDown(u, *steps); err != nil {
			return err
		}
	case "status":
	default:
		fmt.Fprintf(e.stderr, "roomlog migrate: unknown direction %q (up, down or status)\n", dir)
		return errUsage
	}
	st, err := eventstore.MigrateStatus(u)
	if err != nil {
		return err
	}
	state := "current"
	switch {
	case st.Dirty:
		state = "DIRTY: a migration failed halfway; fix it by hand"
	case st.Version < st.Latest:
		state = fmt.Sprintf("%d pending", st.Latest-st.Version)
	}
	fmt.Fprintf(e.stdout, "schema version %d of %d (%s)\n", st.Version, st.Latest, state)
	return nil
}
