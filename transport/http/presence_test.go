package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

func TestPresence(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	u1 := as(t, "u1")
	seen := time.Date(2025, 1, 2, 3, 0, 0, 0, time.FixedZone("x", 3600))
	b.presence.set(map[string]eventstore.PresenceStatus{
		"u2":    {UserID: "u2", Status: domain.StatusOnline, LastSeen: seen},
		"u3":    {UserID: "u3", Status: domain.StatusOffline, LastSeen: seen.Add(-time.Hour)},
		"never": {UserID: "never", Status: domain.StatusOffline},
	}, nil, false)

	golden(t, "presence", b.get(t, http.StatusOK, "/api/v1/presence?user=u3&user=u2&user=never&user=u2", u1...))
	if got := b.presence.lastCall(); fmt.Sprint(got) != "[u3 u2 never]" {
		t.Fatalf("reader asked for %v", got)
	}

	golden(t, "presence_invalid", b.get(t, http.StatusBadRequest, "/api/v1/presence?user=ok&user=not%20ok&users=x", u1...))
	b.get(t, http.StatusBadRequest, "/api/v1/presence", u1...)
	b.get(t, http.StatusBadRequest, "/api/v1/presence?"+strings.Repeat("user=a&", httpapi.MaxPresenceUsers+1), u1...)
	b.get(t, http.StatusOK, "/api/v1/presence?"+strings.Repeat("user=a&", httpapi.MaxPresenceUsers), u1...)
	b.get(t, http.StatusUnauthorized, "/api/v1/presence?user=u2")

	b.presence.set(nil, &domain.Error{Code: domain.CodeUnavailable, Message: "database unavailable", Err: errBoom}, false)
	golden(t, "presence_unavailable", b.get(t, http.StatusServiceUnavailable, "/api/v1/presence?user=u2", u1...))
}

func TestPresenceDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true, noPresence: true})
	b.get(t, http.StatusNotFound, "/api/v1/presence?user=u2", as(t, "u1")...)
}
