package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// PresenceReader reports users' presence. *eventstore.Store satisfies it.
type PresenceReader interface {
	// Presence returns the presence of userIDs, in any order; users never
	// seen may be left out or reported offline with a zero LastSeen.
	// Errors carry domain codes (CodeUnavailable when the database is
	// down). Safe for concurrent use.
	Presence(ctx context.Context, userIDs []string) ([]eventstore.PresenceStatus, error)
}

// presenceJSON answers GET /api/v1/presence.
type presenceJSON struct {
	Users []userPresenceJSON `json:"users"`
}

type userPresenceJSON struct {
	UserID   string     `json:"userId"`
	Status   string     `json:"status"`
	LastSeen *time.Time `json:"lastSeen"`
}

// presenceStatus is GET /api/v1/presence?user=…(repeatable). Any
// authenticated user may ask: the spec broadcasts every status change to
// everyone anyway. Users are answered in the order asked, once each; a
// user the reader does not know is offline with lastSeen null.
func (s *Server) presenceStatus(c *gin.Context) {
	if _, err := s.user(c); err != nil {
		s.writeError(c, err)
		return
	}
	if s.presence == nil {
		s.writeError(c, domain.Errorf(domain.CodeNotFound, "presence is not enabled"))
		return
	}
	var errs fieldErrors
	for name := range c.Request.URL.Query() {
		if name != "user" {
			errs.add(shortKey(name), "unknown parameter")
		}
	}
	asked := c.QueryArray("user")
	var users []string
	seen := map[string]bool{}
	switch {
	case len(asked) == 0:
		errs.add("user", "at least one user is required")
	case len(asked) > MaxPresenceUsers:
		errs.add("user", fmt.Sprintf("at most %d users", MaxPresenceUsers))
	default:
		for i, u := range asked {
			if err := domain.ValidID(u); err != nil {
				errs.add(fmt.Sprintf("user[%d]", i), fmt.Sprintf("must be a user id: 1 to %d of %s", domain.MaxIDLen, domain.IDCharset))
				continue
			}
			if !seen[u] {
				seen[u] = true
				users = append(users, u)
			}
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b domain.FieldError) int { return strings.Compare(a.Field, b.Field) })
		s.writeError(c, invalid("invalid query parameters", errs...))
		return
	}
	got, err := s.presence.Presence(c.Request.Context(), users)
	if err != nil {
		s.writeError(c, err)
		return
	}
	byUser := make(map[string]eventstore.PresenceStatus, len(got))
	for _, p := range got {
		byUser[p.UserID] = p
	}
	resp := presenceJSON{Users: make([]userPresenceJSON, len(users))}
	for i, u := range users {
		p, ok := byUser[u]
		if !ok || p.Status == "" {
			resp.Users[i] = userPresenceJSON{UserID: u, Status: string(domain.StatusOffline)}
			continue
		}
		up := userPresenceJSON{UserID: u, Status: string(p.Status)}
		if !p.LastSeen.IsZero() {
			t := p.LastSeen.UTC()
			up.LastSeen = &t
		}
		resp.Users[i] = up
	}
	s.writeJSON(c, http.StatusOK, resp)
}
