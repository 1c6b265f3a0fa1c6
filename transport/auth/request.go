package auth

import (
	"net/http"
	"strings"
)

// TokenFromRequest returns the bearer token a client presented, or "" if it
// presented none. In order of precedence it takes authToken (the Socket.IO
// handshake's auth.token, which may itself carry a "Bearer " prefix), then an
// "Authorization: Bearer <token>" header (the scheme is case-insensitive),
// then the value of the cookie named cookieName if cookieName is not empty.
// It does not verify the token. r may be nil.
func TokenFromRequest(r *http.Request, authToken string, cookieName string) string {
	if t := strings.TrimSpace(authToken); t != "" {
		if b, ok := bearer(t); ok {
			return b
		}
		return t
	}
	if r == nil {
		return ""
	}
	if t, ok := bearer(r.Header.Get("Authorization")); ok {
		return t
	}
	if cookieName != "" {
		if c, err := r.Cookie(cookieName); err == nil {
			return strings.TrimSpace(c.Value)
		}
	}
	return ""
}

// APIKeyFromRequest returns the API key a producer presented in an
// "Authorization: Bearer <key>" header or, failing that, an
// "X-API-Key: <key>" header; "" if neither is present. It does not check the
// key. r may be nil.
func APIKeyFromRequest(r *http.Request) string {
	if r == nil {
		return ""
	}
	if k, ok := bearer(r.Header.Get("Authorization")); ok {
		return k
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// bearer returns the credentials of an "Bearer <credentials>" header value,
// matching the scheme case-insensitively (RFC 9110 §11.1). ok is false if
// the scheme is not Bearer or the credentials are empty.
func bearer(h string) (string, bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	t := strings.TrimSpace(rest)
	return t, t != ""
}
