package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

func TestTokenFromRequest(t *testing.T) {
	t.Parallel()

	req := func(header map[string]string, cookies ...*http.Cookie) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
		for k, v := range header {
			r.Header.Set(k, v)
		}
		for _, c := range cookies {
			r.AddCookie(c)
		}
		return r
	}
	cookie := &http.Cookie{Name: "roomlog_token", Value: "from-cookie"}

	tests := []struct {
		name       string
		r          *http.Request
		authToken  string
		cookieName string
		want       string
	}{
		{name: "AuthTokenWins", r: req(map[string]string{"Authorization": "Bearer from-header"}, cookie), authToken: "from-auth", cookieName: "roomlog_token", want: "from-auth"},
		{name: "AuthTokenTrimmed", r: req(nil), authToken: "  from-auth \n", want: "from-auth"},
		{name: "AuthTokenBearerPrefix", r: req(nil), authToken: "Bearer from-auth", want: "from-auth"},
		{name: "AuthTokenNilRequest", r: nil, authToken: "from-auth", want: "from-auth"},
		{name: "HeaderBeforeCookie", r: req(map[string]string{"Authorization": "Bearer from-header"}, cookie), cookieName: "roomlog_token", want: "from-header"},
		{name: "HeaderSchemeCaseInsensitive", r: req(map[string]string{"Authorization": "bEaReR   from-header "}), want: "from-header"},
		{name: "BlankAuthTokenFallsThrough", r: req(map[string]string{"Authorization": "Bearer from-header"}), authToken: "   ", want: "from-header"},
		{name: "BasicSchemeFallsToCookie", r: req(map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, cookie), cookieName: "roomlog_token", want: "from-cookie"},
		{name: "EmptyBearerFallsToCookie", r: req(map[string]string{"Authorization": "Bearer "}, cookie), cookieName: "roomlog_token", want: "from-cookie"},
		{name: "BearerWithoutSpace", r: req(map[string]string{"Authorization": "Bearerxyz"}), want: ""},
		{name: "Cookie", r: req(nil, cookie), cookieName: "roomlog_token", want: "from-cookie"},
		{name: "CookieNameEmpty", r: req(nil, cookie), cookieName: "", want: ""},
		{name: "CookieAbsent", r: req(nil, cookie), cookieName: "other", want: ""},
		{name: "Nothing", r: req(nil), cookieName: "roomlog_token", want: ""},
		{name: "NilRequest", r: nil, cookieName: "roomlog_token", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := TokenFromRequest(tt.r, tt.authToken, tt.cookieName); got != tt.want {
				t.Errorf("TokenFromRequest() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAPIKeyFromRequest(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{name: "Bearer", header: map[string]string{"Authorization": "Bearer key-1"}, want: "key-1"},
		{name: "BearerLowercase", header: map[string]string{"Authorization": "bearer key-1"}, want: "key-1"},
		{name: "XAPIKey", header: map[string]string{"X-API-Key": " key-2 "}, want: "key-2"},
		{name: "BearerBeforeXAPIKey", header: map[string]string{"Authorization": "Bearer key-1", "X-API-Key": "key-2"}, want: "key-1"},
		{name: "BasicIgnored", header: map[string]string{"Authorization": "Basic abc", "X-API-Key": "key-2"}, want: "key-2"},
		{name: "None", header: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := APIKeyFromRequest(r); got != tt.want {
				t.Errorf("APIKeyFromRequest() = %q, want %q", got, tt.want)
			}
		})
	}
	if got := APIKeyFromRequest(nil); got != "" {
		t.Errorf("APIKeyFromRequest(nil) = %q, want empty", got)
	}
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	secret := []byte("authenticator-test-secret-0123456789abcdef")
	v, err := NewVerifier(Config{HSSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := MintHS256(secret, domain.Principal{UserID: "u1"}, time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := Authenticator{Verifier: v, CookieName: "session", Now: func() time.Time { return now }}
	cookieReq := httptest.NewRequest(http.MethodGet, "/", nil)
	cookieReq.AddCookie(&http.Cookie{Name: "session", Value: tok})
	tests := []struct {
		name      string
		r         *http.Request
		authToken string
		wantUser  string
	}{
		{"HandshakeToken", nil, tok, "u1"},
		{"Cookie", cookieReq, "", "u1"},
		{"Nothing", httptest.NewRequest(http.MethodGet, "/", nil), "", ""},
		{"Garbage", nil, "not-a-jwt", ""},
	}
	for _, tt := range tests {
		p, err := a.Authenticate(tt.r, tt.authToken)
		if tt.wantUser == "" {
			if domain.ErrorCode(err) != domain.CodeUnauthorized {
				t.Errorf("%s: err = %v, want unauthorized", tt.name, err)
			}
			continue
		}
		if err != nil || p.UserID != tt.wantUser {
			t.Errorf("%s: %+v, %v", tt.name, p, err)
		}
	}
	if _, err := (Authenticator{}).Authenticate(nil, tok); domain.ErrorCode(err) != domain.CodeUnauthorized {
		t.Errorf("no verifier: err = %v, want unauthorized", err)
	}
}
