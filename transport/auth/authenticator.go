package auth

import (
	"net/http"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Authenticator identifies the user behind an HTTP request or a Socket.IO
// handshake from a JSON Web Token: the explicit authToken (a handshake's
// auth.token), else an "Authorization: Bearer" header, else the cookie
// named CookieName (see TokenFromRequest). transport/http and
// transport/socketio both use it, so REST and sockets accept exactly the
// same credentials.
type Authenticator struct {
	// Verifier checks tokens. Required.
	Verifier *Verifier
	// CookieName, if set, names a cookie that may carry the token.
	CookieName string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authenticate returns the principal the credentials identify. Every
// failure is an error with domain.CodeUnauthorized and the message
// "unauthorized"; the wrapped cause says why, for logs. It is safe for
// concurrent use.
func (a Authenticator) Authenticate(r *http.Request, authToken string) (domain.Principal, error) {
	tok := TokenFromRequest(r, authToken, a.CookieName)
	if tok == "" {
		return domain.Principal{}, &domain.Error{Code: domain.CodeUnauthorized, Message: "unauthorized"}
	}
	if a.Verifier == nil {
		return domain.Principal{}, &domain.Error{Code: domain.CodeUnauthorized, Message: "unauthorized"}
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	return a.Verifier.Verify(tok, now())
}
