package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// This file serves the read models the projections build from the log
// (see projector.Registry): a user's unread notification count and an
// entity's history and state as of a point in time.

// MaxEntityEvents caps the events one entity answer lists. The state is
// folded from the whole history all the same; more: true says events were
// left out.
const MaxEntityEvents = 10_000

// ReadModels answers the read-model routes. *eventstore.Store satisfies
// it. Both read models are as fresh as their projections ("unread" and
// "entities"; see eventstore.Store.ProjectionStatus).
type ReadModels interface {
	// UnreadCount returns userID's unread notification count: 0 for a
	// user the log never notified. Errors carry domain codes
	// (CodeUnavailable when the database is down). Safe for concurrent
	// use.
	UnreadCount(ctx context.Context, userID string) (int64, error)
	// EntityEvents returns one page of the deliveries that touched
	// q.Entity and were accepted at or before q.At (zero: no bound), in
	// the log's global order, after q.After and at most q.Limit of them;
	// a page shorter than q.Limit is the last. Errors carry domain codes
	// (CodeInvalid for a malformed entity, CodeUnavailable when the
	// database is down). Safe for concurrent use.
	EntityEvents(ctx context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error)
}

// unreadJSON answers GET /api/v1/notifications/unread-count.
type unreadJSON struct {
	UnreadCount int64 `json:"unreadCount"`
}

// entityJSON answers GET /api/v1/audit/entities/{kind}/{id}.
type entityJSON struct {
	Entity entityRefJSON `json:"entity"`
	// At is the instant the history and the state are as of.
	At time.Time `json:"at"`
	// Events are the entity's deliveries up to At in the log's global
	// order, at most MaxEntityEvents of them.
	Events []eventJSON `json:"events"`
	// More reports that the history holds more events than Events lists.
	More bool `json:"more"`
	// State is the whole history up to At, folded.
	State domain.EntityState `json:"state"`
}

type entityRefJSON struct {
	Kind domain.EntityKind `json:"kind"`
	ID   string            `json:"id"`
}

// errReadModelsDisabled answers the read-model routes of a server built
// without Params.ReadModels.
var errReadModelsDisabled = &domain.Error{Code: domain.CodeNotFound, Message: "read models are not enabled"}

// unreadCount is GET /api/v1/notifications/unread-count and the spec's
// GET /api/notifications/unread-count: the caller's own count, from the
// user id of their token. It takes no parameters, so that nobody can ask
// for someone else's count.
func (s *Server) unreadCount(c *gin.Context) {
	p, err := s.user(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if s.readModels == nil {
		s.writeError(c, errReadModelsDisabled)
		return
	}
	n, err := s.readModels.UnreadCount(c.Request.Context(), p.UserID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, unreadJSON{UnreadCount: n})
}

// auditEntity is GET /api/v1/audit/entities/{kind}/{id}?at=: the entity's
// history as of at (default: now) and its state folded from it. Events
// past MaxEntityEvents are folded but not listed. Each page read runs
// under Config.AuditStatementTimeout.
func (s *Server) auditEntity(c *gin.Context) {
	if _, err := s.auditor(c); err != nil {
		s.writeError(c, err)
		return
	}
	if s.readModels == nil {
		s.writeError(c, errReadModelsDisabled)
		return
	}
	ref, at, err := parseEntityRequest(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	resp, err := s.entityHistory(c.Request.Context(), ref, at)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, resp)
}

// parseEntityRequest reads the kind and id path parameters and the at
// query parameter, reporting every bad one. A missing at is now.
func parseEntityRequest(c *gin.Context) (domain.EntityRef, time.Time, error) {
	var errs fieldErrors
	values := c.Request.URL.Query()
	for name, vs := range values {
		switch {
		case name != "at":
			errs.add(shortKey(name), "unknown parameter")
		case len(vs) > 1:
			errs.add(name, "may be given once")
		}
	}
	// The catch-all id starts with the slash that ends kind.
	id := strings.TrimPrefix(c.Param("id"), "/")
	ref, err := domain.ParseEntityRef(c.Param("kind"), id)
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) {
			return ref, time.Time{}, err
		}
		for _, f := range de.Fields {
			errs.add(f.Field, f.Message)
		}
	}
	// Microseconds: the log's timestamps have no finer precision, and the
	// answer echoes exactly the instant it compared them with.
	at := time.Now().UTC().Truncate(time.Microsecond)
	if v, ok := values["at"]; ok {
		t, err := time.Parse(time.RFC3339Nano, v[0])
		t = t.UTC().Truncate(time.Microsecond)
		switch {
		case err != nil:
			errs.add("at", "must be an RFC 3339 time such as 2025-01-31T00:00:00Z")
		case !t.After(time.Time{}):
			// The zero time would mean "no bound" to the store.
			errs.add("at", "must be after 0001-01-01T00:00:00Z")
		default:
			at = t
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b domain.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return ref, at, invalid("invalid entity query", errs...)
	}
	return ref, at, nil
}

// entityHistory reads ref's history as of at page by page, listing the
// first MaxEntityEvents deliveries and folding all of them, so that its
// memory stays bounded by the cap whatever the history's length.
func (s *Server) entityHistory(ctx context.Context, ref domain.EntityRef, at time.Time) (entityJSON, error) {
	resp := entityJSON{
		Entity: entityRefJSON{Kind: ref.Kind, ID: ref.ID},
		At:     at,
		Events: []eventJSON{},
		State:  domain.NewEntityState(ref),
	}
	q := eventstore.EntityQuery{Entity: ref, At: at, Limit: eventstore.MaxReadLimit}
	for {
		page, err := s.entityPage(ctx, q)
		if err != nil {
			return entityJSON{}, err
		}
		for _, d := range page {
			resp.State.Apply(d)
			if len(resp.Events) < MaxEntityEvents {
				resp.Events = append(resp.Events, toEventJSON(d))
			} else {
				resp.More = true
			}
		}
		if len(page) < q.Limit {
			return resp, nil
		}
		q.After = page[len(page)-1].Position
	}
}

// entityPage reads one page under the audit statement timeout.
func (s *Server) entityPage(ctx context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AuditStatementTimeout)
	defer cancel()
	return s.readModels.EntityEvents(ctx, q)
}
