package domain

import (
	"slices"
	"time"
)

// Role is a coarse permission carried in a user's token.
type Role string

// The roles roomlog understands. Tokens may carry others; they are ignored.
const (
	RoleBuyer   Role = "buyer"
	RoleSeller  Role = "seller"
	RoleAdmin   Role = "admin"
	RoleAuditor Role = "auditor"
)

// Principal is the authenticated caller of a socket or an HTTP request, as
// identified by a verified token.
type Principal struct {
	// UserID is the token's user-id claim ("sub" by default).
	UserID string
	// Roles are the token's roles claim, filtered to the known roles.
	Roles []Role
	// ExpiresAt is when the credentials stop being valid (the token's
	// exp); the zero time means they do not expire. Long-lived
	// connections end then, so a revoked user cannot keep listening.
	ExpiresAt time.Time
}

// HasRole reports whether p carries role r.
func (p Principal) HasRole(r Role) bool { return slices.Contains(p.Roles, r) }

// IsAdmin reports whether p carries the admin role.
func (p Principal) IsAdmin() bool { return p.HasRole(RoleAdmin) }
