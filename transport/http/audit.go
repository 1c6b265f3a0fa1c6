package httpapi

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// auditPage answers GET /api/v1/audit/events.
type auditPage struct {
	Events []eventJSON `json:"events"`
	// Next continues the query; null when no more rows matched at the time
	// of the read.
	Next *string `json:"next"`
}

// verifyJSON answers GET /api/v1/audit/rooms/{room}/verify.
type verifyJSON struct {
	Room        domain.Room `json:"room"`
	OK          bool        `json:"ok"`
	Checked     int64       `json:"checked"`
	FirstBadSeq int64       `json:"firstBadSeq,omitempty"`
	Reason      string      `json:"reason,omitempty"`
}

// Allow-lists of the audit query parameters. Anything else is rejected, so
// that a typo (say requestId=... instead of contains=...) is an error
// rather than a silently unfiltered export of the whole log.
var (
	auditParams  = []string{"room", "type", "producer", "eventId", "from", "to", "contains", "order", "cursor", "limit"}
	exportParams = []string{"room", "type", "producer", "eventId", "from", "to", "contains", "order", "cursor", "format"}
	// auditOrders maps the order parameter to the query's direction.
	auditOrders = map[string]bool{"asc": false, "desc": true}
	// exportFormats lists the export formats and their content types.
	exportFormats = map[string]string{
		"ndjson": "application/x-ndjson",
		"csv":    "text/csv; charset=utf-8",
	}
	// namePattern is the charset of event types and producer names.
	namePattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// containsSpec checks the contains filter with the same JSON rules as event
// payloads (well-formed, an object, no duplicate keys, no \u0000 or lone
// surrogates, numbers PostgreSQL accepts): an extension event's spec
// accepts any object that passes them.
var containsSpec, _ = domain.Lookup(domain.ExtensionPrefix + "audit-filter")

// auditEvents is GET /api/v1/audit/events.
func (s *Server) auditEvents(c *gin.Context) {
	if _, err := s.auditor(c); err != nil {
		s.writeError(c, err)
		return
	}
	q, err := s.parseAuditQuery(c, auditParams)
	if err != nil {
		s.writeError(c, err)
		return
	}
	page, err := s.store.Audit(c.Request.Context(), q)
	if err != nil {
		s.writeError(c, err)
		return
	}
	resp := auditPage{Events: toEventsJSON(page.Events)}
	if page.More && len(page.Events) > 0 {
		next := encodeCursor(page.Events[len(page.Events)-1].Position, q.Desc)
		resp.Next = &next
	}
	s.writeJSON(c, http.StatusOK, resp)
}

// auditExport is GET /api/v1/audit/export?format=ndjson|csv: the audit
// query's every matching row, streamed page by page. Memory stays bounded
// by one page whatever the export's size. The export reads the rows whose
// transactions had finished when it started (one horizon for all pages),
// so it ends even while appends continue. An error after the answer has
// started aborts the connection (after an error line, in NDJSON), so that a
// truncated export never looks complete.
func (s *Server) auditExport(c *gin.Context) {
	if _, err := s.auditor(c); err != nil {
		s.writeError(c, err)
		return
	}
	format := c.DefaultQuery("format", "ndjson")
	contentType, ok := exportFormats[format]
	if !ok {
		s.writeError(c, invalid("invalid query parameters", field("format", "must be ndjson or csv")))
		return
	}
	q, err := s.parseAuditQuery(c, exportParams)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	if q.Horizon, err = s.store.AuditHorizon(ctx); err != nil {
		s.writeError(c, err)
		return
	}
	q.Limit = s.cfg.ExportPageRows
	// The first page is read before the answer starts, so that an
	// unavailable database still answers 503.
	page, err := s.store.Audit(ctx, q)
	if err != nil {
		s.writeError(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="roomlog-audit.%s"`, format))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)

	// A server-wide WriteTimeout would cut a long export short; each page
	// instead gets its own write deadline, which still drops a client that
	// stops reading.
	rc := http.NewResponseController(c.Writer)
	var out exportWriter
	if format == "csv" {
		out = newCSVExport(c.Writer)
	} else {
		out = newNDJSONExport(c.Writer)
	}
	rows := 0
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout)) // unsupported by test recorders
		for _, d := range page.Events {
			if err := out.write(toEventJSON(d)); err != nil {
				return // the client went away; nothing left to tell it
			}
		}
		rows += len(page.Events)
		if err := out.flush(); err != nil {
			return
		}
		c.Writer.Flush()
		if !page.More || len(page.Events) == 0 {
			return
		}
		last := page.Events[len(page.Events)-1].Position
		q.After = &last
		if page, err = s.store.Audit(ctx, q); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.ErrorContext(ctx, "export failed after it started; aborting the response",
				attrRoute, route(c), "rows", rows, attrError, err)
			out.fail(toBody(err))
			_ = out.flush()
			c.Writer.Flush()
			panic(http.ErrAbortHandler)
		}
	}
}

// exportWriteTimeout is how long writing one export page may take.
const exportWriteTimeout = time.Minute

// exportWriter writes one export format.
type exportWriter interface {
	write(e eventJSON) error
	// fail writes what the format can say about a failure mid-stream.
	fail(b errorBody)
	flush() error
}

type ndjsonExport struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newNDJSONExport(w http.ResponseWriter) *ndjsonExport {
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &ndjsonExport{w: bw, enc: enc}
}

func (e *ndjsonExport) write(ev eventJSON) error { return e.enc.Encode(ev) }
func (e *ndjsonExport) fail(b errorBody)         { _ = e.enc.Encode(b) }
func (e *ndjsonExport) flush() error             { return e.w.Flush() }

// csvExport writes id, room, seq, event, at, producer, payload. A payload
// is always a JSON object, so no field can start with a spreadsheet
// formula character.
type csvExport struct {
	w   *csv.Writer
	rec []string
}

func newCSVExport(w http.ResponseWriter) *csvExport {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "room", "seq", "event", "at", "producer", "payload"})
	return &csvExport{w: cw, rec: make([]string, 7)}
}

func (e *csvExport) write(ev eventJSON) error {
	e.rec[0] = ev.ID
	e.rec[1] = string(ev.Room)
	e.rec[2] = strconv.FormatInt(ev.Seq, 10)
	e.rec[3] = ev.Event
	e.rec[4] = ev.At.Format(time.RFC3339Nano)
	e.rec[5] = ev.Producer
	e.rec[6] = string(ev.Payload)
	return e.w.Write(e.rec)
}

// fail writes nothing: CSV has no way to mark an error; the aborted
// connection is the signal.
func (e *csvExport) fail(errorBody) {}

func (e *csvExport) flush() error {
	e.w.Flush()
	return e.w.Error()
}

// auditVerify is GET /api/v1/audit/rooms/{room}/verify.
func (s *Server) auditVerify(c *gin.Context) {
	if _, err := s.auditor(c); err != nil {
		s.writeError(c, err)
		return
	}
	room, err := domain.ParseRoom(c.Param("room"))
	if err != nil {
		s.writeError(c, invalid("invalid room", field("room", "not a valid room name")))
		return
	}
	res, err := s.store.Verify(c.Request.Context(), room)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, verifyJSON{
		Room: room, OK: res.OK, Checked: res.Checked, FirstBadSeq: res.FirstBadSeq, Reason: res.Reason,
	})
}

// parseAuditQuery reads the filter, order, cursor and limit parameters.
// allowed lists the parameters the route accepts.
func (s *Server) parseAuditQuery(c *gin.Context, allowed []string) (eventstore.AuditQuery, error) {
	var errs fieldErrors
	values := c.Request.URL.Query()
	for name, vs := range values {
		if !slices.Contains(allowed, name) {
			errs.add(shortKey(name), "unknown parameter")
			continue
		}
		if name != "type" && len(vs) > 1 {
			errs.add(name, "may be given once")
		}
	}
	q := eventstore.AuditQuery{Timeout: s.cfg.AuditStatementTimeout}
	f := &q.Filter
	if v, ok := values["room"]; ok {
		if r, err := domain.ParseRoom(v[0]); err != nil {
			errs.add("room", "not a valid room name")
		} else {
			f.Room = r
		}
	}
	if ts := values["type"]; len(ts) > eventstore.MaxAuditTypes {
		errs.add("type", fmt.Sprintf("at most %d types", eventstore.MaxAuditTypes))
	} else {
		for _, t := range ts {
			if !namePattern.MatchString(t) {
				errs.add("type", "must be an event name: 1 to 128 of [A-Za-z0-9._:-]")
				break
			}
			f.Types = append(f.Types, t)
		}
	}
	if v, ok := values["producer"]; ok {
		if !namePattern.MatchString(v[0]) {
			errs.add("producer", "must be a producer name: 1 to 128 of [A-Za-z0-9._:-]")
		}
		f.Producer = v[0]
	}
	if v, ok := values["eventId"]; ok {
		id, err := uuid.Parse(v[0])
		if err != nil {
			errs.add("eventId", "must be a UUID")
		}
		f.EventID = id.String()
	}
	f.From = timeParam(values, "from", &errs)
	f.To = timeParam(values, "to", &errs)
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs.add("to", "must be after from")
	}
	if v, ok := values["contains"]; ok {
		raw := json.RawMessage(v[0])
		switch {
		case len(raw) > eventstore.MaxContainsBytes:
			errs.add("contains", fmt.Sprintf("must be at most %d bytes", eventstore.MaxContainsBytes))
		default:
			if fe := containsSpec.Validate(raw); len(fe) > 0 {
				errs.add("contains", "must be a JSON object: "+fe[0].Message)
			} else {
				f.Contains = raw
			}
		}
	}
	if v, ok := values["order"]; ok {
		desc, ok := auditOrders[v[0]]
		if !ok {
			errs.add("order", "must be asc or desc")
		}
		q.Desc = desc
	}
	if v, ok := values["cursor"]; ok {
		pos, desc, err := decodeCursor(v[0])
		switch {
		case err != nil:
			errs.add("cursor", "not a cursor this API issued")
		case desc != q.Desc:
			errs.add("cursor", "was issued for the other order")
		default:
			q.After = &pos
		}
	}
	q.Limit = DefaultReadLimit
	if v, ok := values["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > MaxReadLimit {
			errs.add("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxReadLimit))
		}
		q.Limit = n
	}
	if len(errs) > 0 {
		// Map iteration made the order random; answers must be stable.
		slices.SortStableFunc(errs, func(a, b domain.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return q, invalid("invalid query parameters", errs...)
	}
	return q, nil
}

// timeParam parses an RFC 3339 time parameter.
func timeParam(values map[string][]string, name string, errs *fieldErrors) time.Time {
	v, ok := values[name]
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v[0])
	if err != nil {
		errs.add(name, "must be an RFC 3339 time such as 2025-01-31T00:00:00Z")
		return time.Time{}
	}
	return t
}

// cursorVersion prefixes every cursor, so the format can change later.
const cursorVersion = "c1"

// encodeCursor returns the opaque cursor after pos in the given order.
func encodeCursor(pos domain.Position, desc bool) string {
	dir := "a"
	if desc {
		dir = "d"
	}
	raw := fmt.Sprintf("%s.%s.%d.%d", cursorVersion, dir, pos.Txid, pos.ID)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor parses a cursor made by encodeCursor.
func decodeCursor(s string) (domain.Position, bool, error) {
	if len(s) > 128 {
		return domain.Position{}, false, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return domain.Position{}, false, errBadCursor
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 4 || parts[0] != cursorVersion || (parts[1] != "a" && parts[1] != "d") {
		return domain.Position{}, false, errBadCursor
	}
	txid, err1 := strconv.ParseUint(parts[2], 10, 64)
	id, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || id < 0 {
		return domain.Position{}, false, errBadCursor
	}
	return domain.Position{Txid: txid, ID: id}, parts[1] == "d", nil
}

var errBadCursor = errors.New("bad cursor")
