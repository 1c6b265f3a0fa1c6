package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// DefaultDatabaseURL is the development database.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/roomlog?sslmode=disable"

var errUsage = errors.New("usage")

func newFlags(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("roomlog "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return errUsage
	}
	return nil
}

func databaseURL(e env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if u := e.getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// openStore opens a pool and a store; close releases both.
func openStore(ctx context.Context, dbURL string, e env) (s *eventstore.Store, closeFn func(), err error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s = eventstore.New(pool, logger, nil)
	return s, func() { s.Stop(); pool.Close() }, nil
}

// eventJSON is how the CLI prints one delivery: the same shape as the REST
// API's event objects.
type eventJSON struct {
	ID       string          `json:"id"`
	Room     string          `json:"room"`
	Seq      int64           `json:"seq"`
	Event    string          `json:"event"`
	Payload  json.RawMessage `json:"payload"`
	At       time.Time       `json:"at"`
	Producer string          `json:"producer"`
}

func toEventJSON(d domain.Delivery) eventJSON {
	return eventJSON{ID: d.ID, Room: string(d.Room), Seq: d.Seq, Event: d.Type, Payload: d.Payload, At: d.OccurredAt, Producer: d.Producer}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
