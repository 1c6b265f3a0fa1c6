package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projector"
)

const projectUsage = `usage: roomlog project status [-json] [-database-url URL]
       roomlog project rebuild NAME [-database-url URL]

status   each read-model projection's checkpoint, the events after it and how long
         the oldest of them has waited (also in /readyz)
rebuild  rebuild NAME (membership, unread or entities) from the beginning of the
         log into shadow tables and swap it in atomically; the service keeps
         answering from the old model until the swap
`

// cmdProject is "roomlog project": read-model projection status and
// rebuilds.
func cmdProject(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, projectUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := newFlags("project "+sub, e)
	dbFlag := fs.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	asJSON := fs.Bool("json", false, "with status: print JSON")
	var name string
	switch sub {
	case "status":
	case "rebuild":
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			fmt.Fprint(e.stderr, projectUsage)
			return errUsage
		}
		name, args = args[0], args[1:]
	default:
		fmt.Fprintf(e.stderr, "roomlog project: unknown subcommand %q\n%s", sub, projectUsage)
		return errUsage
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	s, closeStore, err := openStore(ctx, databaseURL(e, *dbFlag), e)
	if err != nil {
		return err
	}
	defer closeStore()
	reg, err := projector.NewRegistry(projector.RegistryConfig{
		Store:  s,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		return err
	}
	if sub == "status" {
		sts, err := reg.Status(ctx)
		if err != nil {
			return err
		}
		return printProjectionStatus(e, sts, *asJSON)
	}
	res, err := reg.Rebuild(ctx, name)
	if err != nil {
		return err
	}
	verdict := "identical to the model it replaced"
	switch {
	case !res.Compared:
		verdict = "not compared: the log moved on during the rebuild"
	case res.Changed:
		verdict = "CHANGED: the replaced model had drifted from the log"
	}
	fmt.Fprintf(e.stdout, "rebuilt %s: %d rows at %d:%d (%s)\n", name, res.Rows, res.Position.Txid, res.Position.ID, verdict)
	return nil
}

// projectionStatusJSON is one line of "roomlog project status -json".
type projectionStatusJSON struct {
	Name            string     `json:"name"`
	Saved           bool       `json:"saved"`
	Txid            string     `json:"txid"`
	Row             int64      `json:"row"`
	SavedAt         *time.Time `json:"savedAt,omitempty"`
	Pending         int64      `json:"pending"`
	PendingCapped   bool       `json:"pendingCapped"`
	OldestPendingAt *time.Time `json:"oldestPendingAt,omitempty"`
	LagSeconds      float64    `json:"lagSeconds"`
}

func printProjectionStatus(e env, sts []eventstore.ProjectionStatus, asJSON bool) error {
	if asJSON {
		out := make([]projectionStatusJSON, len(sts))
		for i, st := range sts {
			out[i] = projectionStatusJSON{
				Name: st.Name, Saved: st.Saved, Txid: strconv.FormatUint(st.Position.Txid, 10), Row: st.Position.ID,
				Pending: st.Pending, PendingCapped: st.Pending >= eventstore.MaxPendingCount, LagSeconds: st.Lag.Seconds(),
			}
			if !st.SavedAt.IsZero() {
				out[i].SavedAt = &st.SavedAt
			}
			if !st.OldestPendingAt.IsZero() {
				out[i].OldestPendingAt = &st.OldestPendingAt
			}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tPOSITION\tPENDING\tLAG\tSAVED")
	for _, st := range sts {
		position, saved := "-", "never"
		if st.Saved {
			position = fmt.Sprintf("%d:%d", st.Position.Txid, st.Position.ID)
			saved = st.SavedAt.Format(time.RFC3339)
		}
		pending := strconv.FormatInt(st.Pending, 10)
		if st.Pending >= eventstore.MaxPendingCount {
			pending += "+"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Name, position, pending, st.Lag.Round(time.Millisecond), saved)
	}
	return tw.Flush()
}
