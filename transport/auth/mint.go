package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
)

// MintOptions adjusts the claims MintHS256 writes. A nil *MintOptions, and
// zero fields, mean the defaults.
type MintOptions struct {
	// UserIDClaim names the user-id claim. Default "sub".
	UserIDClaim string
	// RolesClaim names the roles claim. Default "roles".
	RolesClaim string
	// Issuer, if set, is written as the iss claim.
	Issuer string
	// Audience, if set, is written as the aud claim.
	Audience string
}

// MintHS256 returns an HS256 token for p, issued at now and valid for ttl,
// signed with secret. It writes the user-id and roles claims plus iat, nbf
// and exp, and iss and aud when opts sets them. It is meant for the dev
// command-line tool and for tests; production tokens come from the identity
// provider.
func MintHS256(secret []byte, p domain.Principal, ttl time.Duration, now time.Time, opts *MintOptions) (string, error) {
	if len(secret) < MinHSSecretLen {
		return "", fmt.Errorf("secret must be at least %d bytes, got %d", MinHSSecretLen, len(secret))
	}
	if ttl <= 0 {
		return "", fmt.Errorf("ttl must be positive, got %s", ttl)
	}
	if !userIDPattern.MatchString(p.UserID) {
		return "", errors.New("user id must be 1-64 characters from [A-Za-z0-9._:-]")
	}
	var o MintOptions
	if opts != nil {
		o = *opts
	}
	if o.UserIDClaim == "" {
		o.UserIDClaim = DefaultUserIDClaim
	}
	if o.RolesClaim == "" {
		o.RolesClaim = DefaultRolesClaim
	}
	if o.UserIDClaim == o.RolesClaim {
		return "", fmt.Errorf("UserIDClaim and RolesClaim must differ, both are %q", o.UserIDClaim)
	}
	roles := make([]string, 0, len(p.Roles))
	for _, r := range p.Roles {
		roles = append(roles, string(r))
	}
	claims := jwt.MapClaims{
		"iat": jwt.NewNumericDate(now),
		"nbf": jwt.NewNumericDate(now),
		"exp": jwt.NewNumericDate(now.Add(ttl)),
	}
	// Set after the registered claims so that a custom claim name wins.
	claims[o.UserIDClaim] = p.UserID
	claims[o.RolesClaim] = roles
	if o.Issuer != "" {
		claims["iss"] = o.Issuer
	}
	if o.Audience != "" {
		claims["aud"] = o.Audience
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}
