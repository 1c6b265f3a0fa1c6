package socketio

import (
	"net/http"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

// TokenVerifier verifies a JWT. *auth.Verifier satisfies it.
type TokenVerifier interface {
	// Verify checks token at time now and returns its principal, or an
	// error with domain.CodeUnauthorized.
	Verify(token string, now time.Time) (domain.Principal, error)
}

// TokenAuthenticator is the Authenticator of roomlog's handshakes: it takes
// the JWT from auth.token, else an "Authorization: Bearer" header, else the
// cookie named CookieName (see auth.TokenFromRequest), and verifies it.
type TokenAuthenticator struct {
	// Verifier checks the token. Required.
	Verifier TokenVerifier
	// CookieName is the cookie to read; "" disables cookies. Use
	// Config.CookieName.
	CookieName string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Authenticate implements Authenticator.
func (a TokenAuthenticator) Authenticate(r *http.Request, authToken string) (domain.Principal, error) {
	tok := auth.TokenFromRequest(r, authToken, a.CookieName)
	if tok == "" {
		return domain.Principal{}, domain.Errorf(domain.CodeUnauthorized, "no token")
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	return a.Verifier.Verify(tok, now())
}
