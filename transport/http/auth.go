package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

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
