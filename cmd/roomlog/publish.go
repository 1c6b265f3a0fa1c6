package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// publishInput is one event to publish: the REST API's event shape.
type publishInput struct {
	Event   string          `json:"event"`
	Rooms   []string        `json:"rooms"`
	Room    string          `json:"room"`
	Payload json.RawMessage `json:"payload"`
	ID      string          `json:"id"`
}

type publishOutput struct {
	ID         string         `json:"id"`
	Deliveries []deliveryJSON `json:"deliveries"`
	Replayed   bool           `json:"replayed,omitempty"`
}

type deliveryJSON struct {
	Room string `json:"room"`
	Seq  int64  `json:"seq"`
}

func cmdPublish(ctx context.Context, args []string, e env) error {
	fs := newFlags("publish", e)
	dbFlag := fs.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	event := fs.String("event", "", "event name; without it, NDJSON events are read from stdin")
	var rooms stringList
	fs.Var(&rooms, "room", "target room (repeatable)")
	payload := fs.String("payload", "{}", "JSON payload")
	id := fs.String("id", "", "idempotency key")
	producer := fs.String("producer", "cli", "producer name recorded with the event")
	if err := parse(fs, args); err != nil {
		return err
	}
	var inputs []publishInput
	if *event != "" {
		inputs = append(inputs, publishInput{Event: *event, Rooms: rooms, Payload: json.RawMessage(*payload), ID: *id})
	} else {
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			var in publishInput
			dec := json.NewDecoder(strings.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return fmt.Errorf("stdin line %d: %w", line, err)
			}
			inputs = append(inputs, in)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(inputs) == 0 {
			fmt.Fprintln(e.stderr, "roomlog publish: no -event and nothing on stdin")
			return errUsage
		}
	}
	reqs := make([]eventstore.AppendRequest, 0, len(inputs))
	for i, in := range inputs {
		r, err := toAppendRequest(in, *producer)
		if err != nil {
			return fmt.Errorf("event %d: %w", i+1, describe(err))
		}
		reqs = append(reqs, r)
	}
	s, closeStore, err := openStore(ctx, databaseURL(e, *dbFlag), e)
	if err != nil {
		return err
	}
	defer closeStore()
	if err := s.Start(ctx); err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	// Events are published in order, each on its own, so that one bad
	// line does not hide the outcome of the others; use the REST API's
	// batch form for atomic batches.
	var failed error
	for i, r := range reqs {
		res, err := s.Append(ctx, r)
		if err != nil {
			fmt.Fprintf(e.stderr, "event %d: %v\n", i+1, describe(err))
			failed = errors.New("some events were not published")
			continue
		}
		out := publishOutput{ID: res.EventID, Replayed: res.Replayed}
		for _, d := range res.Deliveries {
			out.Deliveries = append(out.Deliveries, deliveryJSON{Room: string(d.Room), Seq: d.Seq})
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return failed
}

func toAppendRequest(in publishInput, producer string) (eventstore.AppendRequest, error) {
	names := in.Rooms
	if in.Room != "" {
		names = append([]string{in.Room}, names...)
	}
	rooms := make([]domain.Room, 0, len(names))
	for _, n := range names {
		r, err := domain.ParseRoom(n)
		if err != nil {
			return eventstore.AppendRequest{}, err
		}
		rooms = append(rooms, r)
	}
	if len(in.Payload) == 0 {
		in.Payload = json.RawMessage("{}")
	}
	if err := domain.ValidatePublish(in.Event, rooms, in.Payload); err != nil {
		return eventstore.AppendRequest{}, err
	}
	return eventstore.AppendRequest{Type: in.Event, Rooms: rooms, Payload: in.Payload, Producer: producer, IdempotencyKey: in.ID}, nil
}

// describe renders a domain error with its field details for a terminal.
func describe(err error) error {
	var de *domain.Error
	if !errors.As(err, &de) || len(de.Fields) == 0 {
		return err
	}
	parts := make([]string, len(de.Fields))
	for i, f := range de.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Errorf("%s (%s)", de.Message, strings.Join(parts, "; "))
}
