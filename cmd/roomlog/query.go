package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projector"
)

const queryUsage = `usage: roomlog query [-room R] [-event T]... [-producer P] [-event-id ID]
                     [-since T] [-until T] [-contains JSON] [-format ndjson|csv] [-limit N]
       roomlog query -entity KIND:ID [-at T] [-state] [-format ndjson|csv] [-limit N]

The first form prints every event that matches all the filters, oldest first,
as of the start of the query (events committed later are left out, so it
ends while appends continue). The second prints the history of one entity
(request, payment, template-checkout or chat) as of -at, from the entity
index that the server's "entities" projection maintains; -state prints the
entity's state folded from that history instead, as one JSON document.

NDJSON lines have the shape of 'roomlog tail' and of the REST API's events;
CSV has the columns of GET /api/v1/audit/export?format=csv. Times are RFC 3339.

flags:
`

// csvColumns are the columns of GET /api/v1/audit/export?format=csv
// (transport/http's csvExport): keep the two lists identical.
var csvColumns = []string{"id", "room", "seq", "event", "at", "producer", "payload"}

// nameRE is the charset of event types and producer names, as the audit
// API checks them.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// containsSpec checks -contains with the JSON rules of event payloads, as
// the audit API does: an extension event's spec accepts any object that
// passes them.
var containsSpec, _ = domain.Lookup(domain.ExtensionPrefix + "audit-filter")

// queryFlags are the parsed flags of "roomlog query".
type queryFlags struct {
	dbURL                           string
	room, producer, eventID         string
	since, until, contains          string
	events                          stringList
	entity, at                      string
	state                           bool
	format                          string
	limit                           int
	filterSet, entitySet, atOrState bool
	// shaped reports that -format or -limit was given.
	shaped bool
}

// cmdQuery is "roomlog query": an audit query or an entity's history,
// streamed to stdout.
func cmdQuery(ctx context.Context, args []string, e env) error {
	var f queryFlags
	fs := newFlags("query", e)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), queryUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.dbURL, "database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	fs.StringVar(&f.room, "room", "", "only this room's deliveries")
	fs.Var(&f.events, "event", "only events of this type (repeatable)")
	fs.StringVar(&f.producer, "producer", "", "only events published under this producer name")
	fs.StringVar(&f.eventID, "event-id", "", "only the deliveries of this event (a UUID)")
	fs.StringVar(&f.since, "since", "", "only events the log accepted at or after this time (RFC 3339)")
	fs.StringVar(&f.until, "until", "", "only events the log accepted before this time (RFC 3339)")
	fs.StringVar(&f.contains, "contains", "", `only events whose payload contains this JSON object, e.g. {"requestId":"r1"}`)
	fs.StringVar(&f.entity, "entity", "", "print this entity's history instead: KIND:ID, KIND one of request, payment, template-checkout, chat")
	fs.StringVar(&f.at, "at", "", "with -entity: the history as of this time (RFC 3339; default now)")
	fs.BoolVar(&f.state, "state", false, "with -entity: print the entity's folded state as one JSON document instead of its events")
	fs.StringVar(&f.format, "format", "ndjson", "output format: ndjson or csv")
	fs.IntVar(&f.limit, "limit", 0, "stop after this many events (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "room", "event", "producer", "event-id", "since", "until", "contains":
			f.filterSet = true
		case "entity":
			f.entitySet = true
		case "at", "state":
			f.atOrState = true
		case "format", "limit":
			f.shaped = true
		}
	})
	if msg := f.usageError(fs.Args()); msg != "" {
		fmt.Fprintf(e.stderr, "roomlog query: %s\n", msg)
		return errUsage
	}
	if f.entitySet {
		ref, at, err := f.entityQuery()
		if err != nil {
			return err
		}
		return queryEntity(ctx, e, f, ref, at)
	}
	filter, err := f.auditFilter()
	if err != nil {
		return err
	}
	return queryAudit(ctx, e, f, filter)
}

// usageError checks the flags' combination and the values that are not
// filters; a non-empty answer means exit status 2.
func (f *queryFlags) usageError(args []string) string {
	switch {
	case len(args) > 0:
		return fmt.Sprintf("unexpected argument %q (every filter is a flag)", args[0])
	case f.format != "ndjson" && f.format != "csv":
		return fmt.Sprintf("-format must be ndjson or csv, not %q", f.format)
	case f.limit < 0:
		return "-limit must not be negative"
	case f.entitySet && f.filterSet:
		return "-entity cannot be combined with -room, -event, -producer, -event-id, -since, -until or -contains"
	case f.atOrState && !f.entitySet:
		return "-at and -state need -entity"
	case f.state && f.shaped:
		return "-state prints one JSON document; it takes no -format or -limit"
	}
	return ""
}

// flagError reports a bad filter value, naming its flag.
func flagError(name, format string, args ...any) error {
	return fmt.Errorf("-%s: %s", name, fmt.Sprintf(format, args...))
}

// auditFilter turns the filter flags into an audit filter, naming the
// first bad flag.
func (f *queryFlags) auditFilter() (eventstore.AuditFilter, error) {
	var q eventstore.AuditFilter
	if f.room != "" {
		r, err := domain.ParseRoom(f.room)
		if err != nil {
			return q, flagError("room", "%q is not a valid room name", f.room)
		}
		q.Room = r
	}
	if len(f.events) > eventstore.MaxAuditTypes {
		return q, flagError("event", "at most %d event types", eventstore.MaxAuditTypes)
	}
	for _, t := range f.events {
		if !nameRE.MatchString(t) {
			return q, flagError("event", "%q is not an event name (1 to 128 of A-Z a-z 0-9 . _ : -)", t)
		}
		q.Types = append(q.Types, t)
	}
	if f.producer != "" {
		if !nameRE.MatchString(f.producer) {
			return q, flagError("producer", "%q is not a producer name (1 to 128 of A-Z a-z 0-9 . _ : -)", f.producer)
		}
		q.Producer = f.producer
	}
	if f.eventID != "" {
		id, err := uuid.Parse(f.eventID)
		if err != nil {
			return q, flagError("event-id", "%q is not a UUID", f.eventID)
		}
		q.EventID = id.String()
	}
	var err error
	if q.From, err = timeFlag("since", f.since); err != nil {
		return q, err
	}
	if q.To, err = timeFlag("until", f.until); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, flagError("until", "must be after -since")
	}
	if f.contains != "" {
		raw := json.RawMessage(f.contains)
		if len(raw) > eventstore.MaxContainsBytes {
			return q, flagError("contains", "must be at most %d bytes", eventstore.MaxContainsBytes)
		}
		if fe := containsSpec.Validate(raw); len(fe) > 0 {
			return q, flagError("contains", "must be a JSON object: %s", fe[0].Message)
		}
		q.Contains = raw
	}
	return q, nil
}

// entityQuery parses -entity and -at.
func (f *queryFlags) entityQuery() (domain.EntityRef, time.Time, error) {
	// The kind never holds a colon; a payment id may.
	kind, id, ok := strings.Cut(f.entity, ":")
	if !ok {
		return domain.EntityRef{}, time.Time{}, flagError("entity", "%q is not KIND:ID, e.g. request:r1", f.entity)
	}
	ref, err := domain.ParseEntityRef(kind, id)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) && len(de.Fields) > 0 {
			return ref, time.Time{}, flagError("entity", "%s %s", de.Fields[0].Field, de.Fields[0].Message)
		}
		return ref, time.Time{}, flagError("entity", "%v", err)
	}
	at, err := timeFlag("at", f.at)
	if err != nil {
		return ref, at, err
	}
	return ref, at, nil
}

// timeFlag parses an RFC 3339 flag value; "" is the zero time.
func timeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !t.After(time.Time{}) {
		return time.Time{}, flagError(name, "%q is not an RFC 3339 time such as 2025-01-31T00:00:00Z", v)
	}
	return t, nil
}

// queryAudit streams the events that match filter, page by page, below one
// horizon taken at the start, so that the output is one consistent set.
func queryAudit(ctx context.Context, e env, f queryFlags, filter eventstore.AuditFilter) error {
	s, closeStore, err := openStore(ctx, databaseURL(e, f.dbURL), e)
	if err != nil {
		return err
	}
	defer closeStore()
	horizon, err := s.AuditHorizon(ctx)
	if err != nil {
		return err
	}
	out := newEventWriter(e.stdout, f.format)
	q := eventstore.AuditQuery{Filter: filter, Horizon: horizon}
	printed := 0
	for {
		q.Limit = eventstore.MaxReadLimit
		if f.limit > 0 {
			q.Limit = min(q.Limit, f.limit-printed)
		}
		page, err := s.Audit(ctx, q)
		if err != nil {
			return err
		}
		for _, d := range page.Events {
			if err := out.write(d); err != nil {
				return err
			}
		}
		printed += len(page.Events)
		if err := out.flush(); err != nil {
			return err
		}
		if !page.More || len(page.Events) == 0 || (f.limit > 0 && printed >= f.limit) {
			return nil
		}
		q.After = &page.Events[len(page.Events)-1].Position
	}
}

// queryEntity prints ref's history as of at (zero: now), or with -state
// its folded state. A warning on stderr says when the entity index is
// behind the log at at.
func queryEntity(ctx context.Context, e env, f queryFlags, ref domain.EntityRef, at time.Time) error {
	s, closeStore, err := openStore(ctx, databaseURL(e, f.dbURL), e)
	if err != nil {
		return err
	}
	defer closeStore()
	if err := warnIfBehind(ctx, e, s, at); err != nil {
		return err
	}
	if f.state {
		st, err := s.EntityState(ctx, ref, at)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	out := newEventWriter(e.stdout, f.format)
	printed := 0
	for d, err := range s.EntityHistory(ctx, ref, at) {
		if err != nil {
			return err
		}
		if err := out.write(d); err != nil {
			return err
		}
		printed++
		if f.limit > 0 && printed >= f.limit {
			break
		}
	}
	return out.flush()
}

// warnIfBehind warns when the "entities" projection has not indexed every
// event the log accepted up to at (zero: now): the history printed may
// then be incomplete. The index is the server's; the CLI only reads it.
func warnIfBehind(ctx context.Context, e env, s *eventstore.Store, at time.Time) error {
	sts, err := s.ProjectionStatus(ctx, projector.EntitiesName)
	if err != nil {
		return err
	}
	if len(sts) != 1 {
		return nil
	}
	st := sts[0]
	behind := st.Pending > 0 && (at.IsZero() || !st.OldestPendingAt.After(at))
	if !st.Saved || behind {
		pending := strconv.FormatInt(st.Pending, 10)
		if st.Pending >= eventstore.MaxPendingCount {
			pending += "+"
		}
		fmt.Fprintf(e.stderr, "roomlog query: warning: the entity index (projection %q) is %s events behind the log; "+
			"the history may be incomplete until roomlogd catches it up (see 'roomlog project status')\n", projector.EntitiesName, pending)
	}
	return nil
}

// eventWriter writes deliveries as NDJSON or CSV through one buffer.
type eventWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
	csv *csv.Writer
	rec []string
}

func newEventWriter(w io.Writer, format string) *eventWriter {
	bw := bufio.NewWriterSize(w, 32<<10)
	ew := &eventWriter{w: bw}
	if format == "csv" {
		ew.csv = csv.NewWriter(bw)
		ew.rec = make([]string, len(csvColumns))
		_ = ew.csv.Write(csvColumns) // a buffered write; errors surface at flush
		return ew
	}
	ew.enc = json.NewEncoder(bw)
	// Payloads print byte for byte as stored, like the REST API's.
	ew.enc.SetEscapeHTML(false)
	return ew
}

func (w *eventWriter) write(d domain.Delivery) error {
	d.OccurredAt = d.OccurredAt.UTC()
	ev := toEventJSON(d)
	if w.csv == nil {
		return w.enc.Encode(ev)
	}
	w.rec[0] = ev.ID
	w.rec[1] = ev.Room
	w.rec[2] = strconv.FormatInt(ev.Seq, 10)
	w.rec[3] = ev.Event
	w.rec[4] = ev.At.Format(time.RFC3339Nano)
	w.rec[5] = ev.Producer
	w.rec[6] = string(ev.Payload)
	return w.csv.Write(w.rec)
}

func (w *eventWriter) flush() error {
	if w.csv != nil {
		w.csv.Flush()
		if err := w.csv.Error(); err != nil {
			return err
		}
	}
	return w.w.Flush()
}
