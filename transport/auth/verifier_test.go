package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
)

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{
			name: "Zero",
			in:   Config{},
			want: Config{UserIDClaim: "sub", RolesClaim: "roles", Leeway: 30 * time.Second},
		},
		{
			name: "KeepsSetFields",
			in:   Config{UserIDClaim: "uid", RolesClaim: "perms", Leeway: time.Second, Issuer: "iss"},
			want: Config{UserIDClaim: "uid", RolesClaim: "perms", Leeway: time.Second, Issuer: "iss"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.in.WithDefaults(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	t.Parallel()
	k := keys(t)

	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("secret-private-bytes")})

	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means success
	}{
		{name: "HSSecretOnly", cfg: Config{HSSecret: testSecret}},
		{name: "RSAPublicKey", cfg: Config{PublicKeysPEM: k.rsaPEM}},
		{name: "RSAPKCS1PublicKey", cfg: Config{PublicKeysPEM: k.rsaPKCS1}},
		{name: "Certificate", cfg: Config{PublicKeysPEM: k.rsaCertPEM}},
		{name: "ECDSAPublicKey", cfg: Config{PublicKeysPEM: k.ec256PEM}},
		{name: "SeveralBlocksAndSecret", cfg: Config{HSSecret: testSecret, PublicKeysPEM: concat(k.rsaPEM, k.ec256PEM, k.ec384PEM)}},
		{name: "Nothing", cfg: Config{}, wantErr: "HSSecret or PublicKeysPEM is required"},
		{name: "BlankPEM", cfg: Config{PublicKeysPEM: []byte(" \n")}, wantErr: "HSSecret or PublicKeysPEM is required"},
		{name: "ShortSecret", cfg: Config{HSSecret: []byte("too-short")}, wantErr: "HSSecret must be at least 32 bytes"},
		{name: "PEMAsSecret", cfg: Config{HSSecret: k.rsaPEM}, wantErr: "HSSecret must not be a PEM block"},
		{name: "NegativeLeeway", cfg: Config{HSSecret: testSecret, Leeway: -time.Second}, wantErr: "Leeway"},
		{name: "SameClaimNames", cfg: Config{HSSecret: testSecret, UserIDClaim: "x", RolesClaim: "x"}, wantErr: "UserIDClaim and RolesClaim"},
		{name: "NotPEM", cfg: Config{PublicKeysPEM: []byte("not a pem block")}, wantErr: "PublicKeysPEM: no PEM blocks"},
		{name: "TrailingGarbage", cfg: Config{PublicKeysPEM: concat(k.rsaPEM, []byte("junk"))}, wantErr: "PublicKeysPEM: trailing data"},
		{name: "PrivateKey", cfg: Config{PublicKeysPEM: privPEM}, wantErr: "PublicKeysPEM: block 1: unsupported PEM block type"},
		{name: "SecondBlockBad", cfg: Config{PublicKeysPEM: concat(k.rsaPEM, privPEM)}, wantErr: "PublicKeysPEM: block 2"},
		{name: "CorruptKey", cfg: Config{PublicKeysPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})}, wantErr: "PublicKeysPEM: block 1: parse public key"},
		{name: "SmallRSA", cfg: Config{PublicKeysPEM: mustPublicPEM(t, smallRSA.Public())}, wantErr: "1024 bits"},
		{name: "P224", cfg: Config{PublicKeysPEM: mustPublicPEM(t, p224.Public())}, wantErr: "unsupported ECDSA curve"},
		{name: "Ed25519", cfg: Config{PublicKeysPEM: ed25519PEM(t)}, wantErr: "unsupported public key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier() = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier() error = nil, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewVerifier() error = %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret-private-bytes") {
				t.Errorf("NewVerifier() error leaks PEM content: %q", err)
			}
		})
	}
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// testVerifiers builds one Verifier per configuration the table uses.
func testVerifiers(t *testing.T) map[string]*Verifier {
	t.Helper()
	k := keys(t)
	cfgs := map[string]Config{
		"hs":     {HSSecret: testSecret},
		"rsa":    {PublicKeysPEM: k.rsaPEM},
		"cert":   {PublicKeysPEM: k.rsaCertPEM},
		"ec":     {PublicKeysPEM: k.ec256PEM},
		"all":    {HSSecret: testSecret, PublicKeysPEM: concat(k.rsaPEM, k.ec256PEM, k.ec384PEM)},
		"custom": {HSSecret: testSecret, UserIDClaim: "uid", RolesClaim: "perms"},
		"issaud": {HSSecret: testSecret, Issuer: "https://id.example", Audience: "roomlog"},
	}
	vs := make(map[string]*Verifier, len(cfgs))
	for name, cfg := range cfgs {
		v, err := NewVerifier(cfg)
		if err != nil {
			t.Fatalf("NewVerifier(%s): %v", name, err)
		}
		vs[name] = v
	}
	return vs
}

func TestVerifierVerify(t *testing.T) {
	t.Parallel()
	k := keys(t)
	vs := testVerifiers(t)

	hs := func(edit func(jwt.MapClaims)) func(testing.TB) string {
		return func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS256, testSecret, claims(edit)) }
	}
	buyer := domain.Principal{UserID: "user-1", Roles: []domain.Role{domain.RoleBuyer}}
	withRoles := func(roles any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) { c["roles"] = roles }
	}
	withSub := func(sub any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) { c["sub"] = sub }
	}

	tests := []struct {
		name     string
		verifier string
		token    func(testing.TB) string
		want     domain.Principal
		wantErr  bool
		wantIs   error // optional: the wrapped reason
	}{
		// Valid signatures.
		{name: "HS256", verifier: "hs", token: hs(nil), want: buyer},
		{name: "RS256", verifier: "rsa", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, k.rsa, claims(nil)) }, want: buyer},
		{name: "RS384", verifier: "rsa", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS384, k.rsa, claims(nil)) }, want: buyer},
		{name: "RS512", verifier: "rsa", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS512, k.rsa, claims(nil)) }, want: buyer},
		{name: "RS256Certificate", verifier: "cert", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, k.rsa, claims(nil)) }, want: buyer},
		{name: "ES256", verifier: "ec", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES256, k.ec256, claims(nil)) }, want: buyer},
		{name: "ES384SeveralKeys", verifier: "all", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES384, k.ec384, claims(nil)) }, want: buyer},
		{name: "HS256SeveralKeys", verifier: "all", token: hs(nil), want: buyer},
		{name: "RS256SeveralKeys", verifier: "all", token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, k.rsa, claims(nil)) }, want: buyer},

		// Time claims.
		{name: "Expired", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-31 * time.Second).Unix() }), wantErr: true, wantIs: jwt.ErrTokenExpired},
		{name: "ExpiredWithinLeeway", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-10 * time.Second).Unix() }), want: buyer},
		{name: "MissingExp", verifier: "hs", token: hs(func(c jwt.MapClaims) { delete(c, "exp") }), wantErr: true, wantIs: jwt.ErrTokenRequiredClaimMissing},
		{name: "ZeroExp", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["exp"] = 0 }), wantErr: true},
		{name: "StringExp", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), wantErr: true, wantIs: jwt.ErrInvalidType},
		{name: "NotYetValid", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Minute).Unix() }), wantErr: true, wantIs: jwt.ErrTokenNotValidYet},
		{name: "NotBeforeWithinLeeway", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(10 * time.Second).Unix() }), want: buyer},
		{name: "IssuedInFuture", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Minute).Unix() }), wantErr: true, wantIs: jwt.ErrTokenUsedBeforeIssued},
		{name: "NoNbfNoIat", verifier: "hs", token: hs(func(c jwt.MapClaims) { delete(c, "nbf"); delete(c, "iat") }), want: buyer},

		// Signatures and algorithms.
		{name: "WrongHSSecret", verifier: "hs", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claims(nil))
		}, wantErr: true, wantIs: jwt.ErrTokenSignatureInvalid},
		{name: "TamperedPayload", verifier: "rsa", token: func(tb testing.TB) string {
			good := strings.Split(sign(tb, jwt.SigningMethodRS256, k.rsa, claims(nil)), ".")
			evil := strings.Split(unsigned(tb, map[string]any{"alg": "RS256"}, claims(withRoles([]string{"admin"}))), ".")
			return good[0] + "." + evil[1] + "." + good[2]
		}, wantErr: true, wantIs: jwt.ErrTokenSignatureInvalid},
		{name: "OtherRSAKey", verifier: "rsa", token: func(tb testing.TB) string {
			other, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				tb.Fatal(err)
			}
			return sign(tb, jwt.SigningMethodRS256, other, claims(nil))
		}, wantErr: true, wantIs: jwt.ErrTokenSignatureInvalid},
		{name: "AlgNone", verifier: "all", token: func(tb testing.TB) string {
			return unsigned(tb, map[string]any{"alg": "none", "typ": "JWT"}, claims(nil))
		}, wantErr: true},
		{name: "AlgNoneCapitalized", verifier: "hs", token: func(tb testing.TB) string {
			return unsigned(tb, map[string]any{"alg": "None"}, claims(nil))
		}, wantErr: true},
		{name: "AlgMissing", verifier: "hs", token: func(tb testing.TB) string {
			return unsigned(tb, map[string]any{"typ": "JWT"}, claims(nil))
		}, wantErr: true},
		{name: "HSSignedWithRSAPublicKeyNoSecret", verifier: "rsa", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS256, k.rsaPEM, claims(nil))
		}, wantErr: true},
		{name: "HSSignedWithRSAPublicKeyWithSecret", verifier: "all", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS256, k.rsaPEM, claims(nil))
		}, wantErr: true, wantIs: jwt.ErrTokenSignatureInvalid},
		{name: "HSSignedWithCertificate", verifier: "cert", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS256, k.rsaCertPEM, claims(nil))
		}, wantErr: true},
		{name: "HSSignedWithECPublicKey", verifier: "ec", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS256, k.ec256PEM, claims(nil))
		}, wantErr: true},
		{name: "HS384NotAllowed", verifier: "hs", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodHS384, testSecret, claims(nil))
		}, wantErr: true},
		{name: "RS256WithoutPublicKey", verifier: "hs", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodRS256, k.rsa, claims(nil))
		}, wantErr: true},
		{name: "ES256WithOnlyRSAKey", verifier: "rsa", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodES256, k.ec256, claims(nil))
		}, wantErr: true},
		{name: "ES384WithOnlyP256Key", verifier: "ec", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodES384, k.ec384, claims(nil))
		}, wantErr: true},
		{name: "PS256NotAllowed", verifier: "rsa", token: func(tb testing.TB) string {
			return sign(tb, jwt.SigningMethodPS256, k.rsa, claims(nil))
		}, wantErr: true},
		{name: "CritHeader", verifier: "hs", token: func(tb testing.TB) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
			tok.Header["crit"] = []string{"exp"}
			s, err := tok.SignedString(testSecret)
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}, wantErr: true},
		{name: "Empty", verifier: "hs", token: func(testing.TB) string { return "" }, wantErr: true},
		{name: "Garbage", verifier: "hs", token: func(testing.TB) string { return "not-a-token" }, wantErr: true, wantIs: jwt.ErrTokenMalformed},
		{name: "TooLong", verifier: "hs", token: hs(withSub(strings.Repeat("a", maxTokenLen))), wantErr: true},

		// Issuer and audience.
		{name: "IssuerAndAudience", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example"; c["aud"] = "roomlog" }), want: buyer},
		{name: "AudienceInArray", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example"; c["aud"] = []string{"other", "roomlog"} }), want: buyer},
		{name: "WrongIssuer", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["iss"] = "https://evil.example"; c["aud"] = "roomlog" }), wantErr: true, wantIs: jwt.ErrTokenInvalidIssuer},
		{name: "MissingIssuer", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["aud"] = "roomlog" }), wantErr: true, wantIs: jwt.ErrTokenRequiredClaimMissing},
		{name: "WrongAudience", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example"; c["aud"] = "other" }), wantErr: true, wantIs: jwt.ErrTokenInvalidAudience},
		{name: "MissingAudience", verifier: "issaud", token: hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example" }), wantErr: true, wantIs: jwt.ErrTokenRequiredClaimMissing},
		{name: "IssuerIgnoredWhenNotConfigured", verifier: "hs", token: hs(func(c jwt.MapClaims) { c["iss"] = "anyone"; c["aud"] = "anything" }), want: buyer},

		// User id.
		{name: "UserIDMaxLength", verifier: "hs", token: hs(withSub(strings.Repeat("a", 64))), want: domain.Principal{UserID: strings.Repeat("a", 64), Roles: buyer.Roles}},
		{name: "UserIDAllCharset", verifier: "hs", token: hs(withSub("A-z.0_9:x")), want: domain.Principal{UserID: "A-z.0_9:x", Roles: buyer.Roles}},
		{name: "UserIDNumber", verifier: "hs", token: hs(withSub(42)), want: domain.Principal{UserID: "42", Roles: buyer.Roles}},
		{name: "UserIDLargeNumber", verifier: "hs", token: hs(withSub(int64(9007199254740993))), want: domain.Principal{UserID: "9007199254740993", Roles: buyer.Roles}},
		{name: "UserIDIntegralFloat", verifier: "hs", token: hs(withSub(42.0)), want: domain.Principal{UserID: "42", Roles: buyer.Roles}},
		{name: "UserIDFraction", verifier: "hs", token: hs(withSub(1.5)), wantErr: true},
		{name: "UserIDNegative", verifier: "hs", token: hs(withSub(-1)), wantErr: true},
		{name: "UserIDMissing", verifier: "hs", token: hs(func(c jwt.MapClaims) { delete(c, "sub") }), wantErr: true},
		{name: "UserIDEmpty", verifier: "hs", token: hs(withSub("")), wantErr: true},
		{name: "UserIDTooLong", verifier: "hs", token: hs(withSub(strings.Repeat("a", 65))), wantErr: true},
		{name: "UserIDSpace", verifier: "hs", token: hs(withSub("user 1")), wantErr: true},
		{name: "UserIDSlash", verifier: "hs", token: hs(withSub("user/1")), wantErr: true},
		{name: "UserIDUnicode", verifier: "hs", token: hs(withSub("usér")), wantErr: true},
		{name: "UserIDBool", verifier: "hs", token: hs(withSub(true)), wantErr: true},
		{name: "UserIDObject", verifier: "hs", token: hs(withSub(map[string]any{"id": "x"})), wantErr: true},

		// Roles.
		{name: "RolesArray", verifier: "hs", token: hs(withRoles([]string{"seller", "admin"})), want: domain.Principal{UserID: "user-1", Roles: []domain.Role{domain.RoleSeller, domain.RoleAdmin}}},
		{name: "RolesSpaceString", verifier: "hs", token: hs(withRoles("buyer auditor")), want: domain.Principal{UserID: "user-1", Roles: []domain.Role{domain.RoleBuyer, domain.RoleAuditor}}},
		{name: "RolesCommaString", verifier: "hs", token: hs(withRoles("admin, seller,,buyer")), want: domain.Principal{UserID: "user-1", Roles: []domain.Role{domain.RoleAdmin, domain.RoleSeller, domain.RoleBuyer}}},
		{name: "RolesSingleString", verifier: "hs", token: hs(withRoles("auditor")), want: domain.Principal{UserID: "user-1", Roles: []domain.Role{domain.RoleAuditor}}},
		{name: "RolesUnknownFiltered", verifier: "hs", token: hs(withRoles([]string{"root", "buyer", "Admin", "superuser"})), want: buyer},
		{name: "RolesDuplicates", verifier: "hs", token: hs(withRoles([]string{"buyer", "buyer"})), want: buyer},
		{name: "RolesAllUnknown", verifier: "hs", token: hs(withRoles("root")), want: domain.Principal{UserID: "user-1"}},
		{name: "RolesEmptyArray", verifier: "hs", token: hs(withRoles([]string{})), want: domain.Principal{UserID: "user-1"}},
		{name: "RolesMissing", verifier: "hs", token: hs(func(c jwt.MapClaims) { delete(c, "roles") }), want: domain.Principal{UserID: "user-1"}},
		{name: "RolesNull", verifier: "hs", token: hs(withRoles(nil)), want: domain.Principal{UserID: "user-1"}},
		{name: "RolesNumber", verifier: "hs", token: hs(withRoles(7)), wantErr: true},
		{name: "RolesArrayWithNumber", verifier: "hs", token: hs(withRoles([]any{"buyer", 7})), wantErr: true},

		// Custom claim names.
		{name: "CustomClaims", verifier: "custom", token: hs(func(c jwt.MapClaims) {
			c["uid"] = "u-9"
			c["perms"] = []string{"admin"}
		}), want: domain.Principal{UserID: "u-9", Roles: []domain.Role{domain.RoleAdmin}}},
		{name: "CustomClaimsIgnoreDefaults", verifier: "custom", token: hs(func(c jwt.MapClaims) { c["uid"] = "u-9" }), want: domain.Principal{UserID: "u-9"}},
		{name: "CustomClaimsMissingUserID", verifier: "custom", token: hs(nil), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := vs[tt.verifier]
			if v == nil {
				t.Fatalf("no verifier %q", tt.verifier)
			}
			got, err := v.Verify(tt.token(t), testNow)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Verify() error = %v", err)
				}
				if got.ExpiresAt.IsZero() {
					t.Errorf("Verify() = %+v: no ExpiresAt from the token's exp", got)
				}
				got.ExpiresAt = time.Time{} // exp itself is checked by the parser
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Verify() = %+v, want %+v", got, tt.want)
				}
				return
			}
			checkUnauthorized(t, err)
			if !reflect.DeepEqual(got, domain.Principal{}) {
				t.Errorf("Verify() principal = %+v on error, want zero", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Verify() error = %v, want it to wrap %v", err, tt.wantIs)
			}
		})
	}
}

// checkUnauthorized asserts err is the generic unauthorized *domain.Error
// with a reason attached.
func checkUnauthorized(tb testing.TB, err error) {
	tb.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		tb.Fatalf("error = %v (%T), want *domain.Error", err, err)
	}
	if de.Code != domain.CodeUnauthorized || de.Message != "unauthorized" {
		tb.Errorf("error = {%s %q}, want {%s %q}", de.Code, de.Message, domain.CodeUnauthorized, "unauthorized")
	}
	if de.Err == nil {
		tb.Errorf("error has no reason in Err")
	}
	if !errors.Is(err, domain.ErrUnauthorized) {
		tb.Errorf("errors.Is(%v, domain.ErrUnauthorized) = false", err)
	}
}

func TestVerifierZeroValue(t *testing.T) {
	t.Parallel()
	// A Verifier not built by NewVerifier must reject everything, not
	// accept every algorithm.
	_, err := (&Verifier{}).Verify(sign(t, jwt.SigningMethodHS256, testSecret, claims(nil)), testNow)
	checkUnauthorized(t, err)
}

func TestVerifierLeeway(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{HSSecret: testSecret, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, claims(func(c jwt.MapClaims) {
		c["iat"] = testNow.Add(-time.Hour).Unix()
		c["nbf"] = testNow.Add(-time.Hour).Unix()
		c["exp"] = testNow.Add(-10 * time.Second).Unix()
	}))
	if _, err := v.Verify(tok, testNow); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("Verify() error = %v, want expired with a 1s leeway", err)
	}
	if _, err := v.Verify(tok, testNow.Add(-10*time.Second)); err != nil {
		t.Errorf("Verify() at an earlier now: %v", err)
	}
}

func TestMintHS256(t *testing.T) {
	t.Parallel()

	admin := domain.Principal{UserID: "42", Roles: []domain.Role{domain.RoleAdmin, domain.RoleSeller}}
	tests := []struct {
		name    string
		secret  []byte
		p       domain.Principal
		ttl     time.Duration
		opts    *MintOptions
		cfg     Config // verifier for the round trip; HSSecret is filled in
		wantErr string
	}{
		{name: "Defaults", secret: testSecret, p: admin, ttl: time.Hour},
		{name: "NoRoles", secret: testSecret, p: domain.Principal{UserID: "u"}, ttl: time.Minute},
		{
			name: "Options", secret: testSecret, p: admin, ttl: time.Hour,
			opts: &MintOptions{UserIDClaim: "uid", RolesClaim: "perms", Issuer: "iss-1", Audience: "aud-1"},
			cfg:  Config{UserIDClaim: "uid", RolesClaim: "perms", Issuer: "iss-1", Audience: "aud-1"},
		},
		{name: "ShortSecret", secret: []byte("short"), p: admin, ttl: time.Hour, wantErr: "secret must be at least 32 bytes"},
		{name: "ZeroTTL", secret: testSecret, p: admin, ttl: 0, wantErr: "ttl must be positive"},
		{name: "BadUserID", secret: testSecret, p: domain.Principal{UserID: "a b"}, ttl: time.Hour, wantErr: "user id"},
		{name: "EmptyUserID", secret: testSecret, p: domain.Principal{}, ttl: time.Hour, wantErr: "user id"},
		{name: "SameClaimNames", secret: testSecret, p: admin, ttl: time.Hour, opts: &MintOptions{UserIDClaim: "roles"}, wantErr: "must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := MintHS256(tt.secret, tt.p, tt.ttl, testNow, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("MintHS256() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MintHS256() error = %v", err)
			}
			cfg := tt.cfg
			cfg.HSSecret = tt.secret
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tok, testNow)
			if err != nil {
				t.Fatalf("Verify(minted) error = %v", err)
			}
			want := tt.p
			if len(want.Roles) == 0 {
				want.Roles = nil
			}
			// exp has whole seconds; MintHS256 sets it to now + ttl.
			want.ExpiresAt = testNow.Add(tt.ttl).Truncate(time.Second)
			if !got.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, want.ExpiresAt)
			}
			got.ExpiresAt = want.ExpiresAt
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Verify(minted) = %+v, want %+v", got, want)
			}
			if _, err := v.Verify(tok, testNow.Add(tt.ttl+time.Minute)); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("Verify(minted) after ttl: error = %v, want expired", err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	k := keys(f)
	f.Add(sign(f, jwt.SigningMethodHS256, testSecret, claims(nil)))
	f.Add(sign(f, jwt.SigningMethodRS256, k.rsa, claims(nil)))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec256, claims(nil)))
	f.Add(sign(f, jwt.SigningMethodHS256, k.rsaPEM, claims(nil)))
	f.Add(sign(f, jwt.SigningMethodHS256, testSecret, claims(func(c jwt.MapClaims) { c["sub"] = 1e300; c["roles"] = []any{1, nil} })))
	f.Add(unsigned(f, map[string]any{"alg": "none"}, claims(nil)))
	f.Add("")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")

	var verifiers []*Verifier
	for _, cfg := range []Config{
		{HSSecret: testSecret},
		{HSSecret: testSecret, PublicKeysPEM: concat(k.rsaPEM, k.ec256PEM), Issuer: "i", Audience: "a"},
	} {
		v, err := NewVerifier(cfg)
		if err != nil {
			f.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range verifiers {
			p, err := v.Verify(token, testNow)
			if err != nil {
				checkUnauthorized(t, err)
				continue
			}
			if !userIDPattern.MatchString(p.UserID) {
				t.Errorf("Verify() accepted user id %q", p.UserID)
			}
			for _, r := range p.Roles {
				if !knownRole(r) {
					t.Errorf("Verify() kept unknown role %q", r)
				}
			}
		}
	})
}
