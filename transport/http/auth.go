package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

// JWTAuthenticator is the Authenticator of users who present a JSON Web
// Token: in authToken, in an "Authorization: Bearer" header or, if
// CookieName is set, in that cookie (see auth.TokenFromRequest).
type JWTAuthenticator struct {
	// Verifier checks tokens. Required.
	Verifier *auth.Verifier
	// CookieName, if set, names a cookie that may carry the token.
	CookieName string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authenticate implements Authenticator. Every failure is an error with
// domain.CodeUnauthorized and the message "unauthorized".
func (a JWTAuthenticator) Authenticate(r *http.Request, authToken string) (domain.Principal, error) {
	tok := auth.TokenFromRequest(r, authToken, a.CookieName)
	if tok == "" {
		return domain.Principal{}, errUnauthorized
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	return a.Verifier.Verify(tok, now())
}

// errUnauthorized is the one answer to missing or bad credentials.
var errUnauthorized = &domain.Error{Code: domain.CodeUnauthorized, Message: "unauthorized"}

// user authenticates the request's user. Any failure becomes the generic
// unauthorized error; a failure that is not one already is logged, since it
// means the authenticator itself broke.
func (s *Server) user(c *gin.Context) (domain.Principal, error) {
	p, err := s.users.Authenticate(c.Request, "")
	if err != nil {
		if domain.ErrorCode(err) != domain.CodeUnauthorized {
			s.logger.WarnContext(c.Request.Context(), "authentication failed", attrRoute, route(c), attrError, err)
		}
		return domain.Principal{}, errUnauthorized
	}
	if p.UserID == "" {
		return domain.Principal{}, errUnauthorized
	}
	return p, nil
}

// producer authenticates a publishing producer by its API key and returns
// the key's name.
func (s *Server) producer(c *gin.Context) (string, error) {
	key := auth.APIKeyFromRequest(c.Request)
	if key == "" {
		return "", errUnauthorized
	}
	name, ok := s.producers.Lookup(key)
	if !ok || name == "" {
		return "", errUnauthorized
	}
	return name, nil
}

// auditor authenticates a user with the auditor or admin role.
func (s *Server) auditor(c *gin.Context) (domain.Principal, error) {
	p, err := s.user(c)
	if err != nil {
		return p, err
	}
	if !p.HasRole(domain.RoleAuditor) && !p.IsAdmin() {
		return p, &domain.Error{Code: domain.CodeForbidden, Message: "the auditor or admin role is required"}
	}
	return p, nil
}
