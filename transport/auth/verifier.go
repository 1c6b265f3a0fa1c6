package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
)

// DefaultUserIDClaim is the claim that holds the user id unless
// Config.UserIDClaim or MintOptions.UserIDClaim names another.
const DefaultUserIDClaim = "sub"

// DefaultRolesClaim is the claim that holds the roles unless
// Config.RolesClaim or MintOptions.RolesClaim names another.
const DefaultRolesClaim = "roles"

// DefaultLeeway is the clock skew allowed for exp, nbf and iat unless
// Config.Leeway sets another.
const DefaultLeeway = 30 * time.Second

// MinHSSecretLen is the shortest HMAC secret NewVerifier and MintHS256
// accept, in bytes: HS256 needs at least 256 bits of key.
const MinHSSecretLen = 32

// minRSABits is the smallest RSA modulus accepted in Config.PublicKeysPEM.
const minRSABits = 2048

// maxTokenLen bounds the work done on a hostile token before its signature
// is checked. Real tokens are a few hundred bytes.
const maxTokenLen = 8 << 10

// unauthorizedMessage is the only message callers ever see for a bad token.
const unauthorizedMessage = "unauthorized"

// userIDPattern is the charset and length of a user id. It is the same rule
// as for room ids; it is checked here because domain may not expose it yet.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// Config configures a Verifier. Zero values mean "use the default"; at least
// one of HSSecret and PublicKeysPEM is required.
type Config struct {
	// HSSecret is the shared secret for HS256 tokens, at least 32 bytes. If
	// empty, HS256 tokens are rejected.
	HSSecret []byte
	// PublicKeysPEM holds one or more PEM blocks, each an RSA or ECDSA public
	// key ("PUBLIC KEY" or "RSA PUBLIC KEY") or a certificate carrying one
	// ("CERTIFICATE"). If empty, RS* and ES* tokens are rejected.
	PublicKeysPEM []byte
	// UserIDClaim names the claim that holds the user id. Default "sub".
	UserIDClaim string
	// RolesClaim names the claim that holds the roles. Default "roles".
	RolesClaim string
	// Issuer, if set, must equal the token's iss claim.
	Issuer string
	// Audience, if set, must be one of the token's aud claim values.
	Audience string
	// Leeway is the allowed clock skew for exp, nbf and iat. Default 30s.
	Leeway time.Duration
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.UserIDClaim == "" {
		c.UserIDClaim = DefaultUserIDClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	return c
}

// validate checks a defaulted Config, naming the offending field.
func (c Config) validate() error {
	if len(c.HSSecret) == 0 && len(bytes.TrimSpace(c.PublicKeysPEM)) == 0 {
		return errors.New("HSSecret or PublicKeysPEM is required")
	}
	if len(c.HSSecret) > 0 && len(c.HSSecret) < MinHSSecretLen {
		return fmt.Errorf("HSSecret must be at least %d bytes, got %d", MinHSSecretLen, len(c.HSSecret))
	}
	// A public key used as an HMAC secret is exactly the algorithm-confusion
	// attack; refuse the configuration mistake that would enable it.
	if bytes.Contains(c.HSSecret, []byte("-----BEGIN")) {
		return errors.New("HSSecret must not be a PEM block")
	}
	if c.Leeway < 0 {
		return fmt.Errorf("Leeway must not be negative, got %s", c.Leeway)
	}
	if c.UserIDClaim == c.RolesClaim {
		return fmt.Errorf("UserIDClaim and RolesClaim must differ, both are %q", c.UserIDClaim)
	}
	return nil
}

// Verifier verifies signed tokens and extracts the Principal they identify.
// It is immutable after NewVerifier and safe for concurrent use.
type Verifier struct {
	hsSecret    []byte
	rsaKeys     []jwt.VerificationKey            // *rsa.PublicKey
	ecKeys      map[string][]jwt.VerificationKey // by alg; *ecdsa.PublicKey
	methods     []string
	userIDClaim string
	rolesClaim  string
	issuer      string
	audience    string
	leeway      time.Duration
}

// NewVerifier returns a Verifier for cfg after applying defaults. It returns
// an error naming the field if cfg has neither an HS secret nor public keys,
// if the secret is shorter than MinHSSecretLen, or if PublicKeysPEM holds
// anything but RSA (at least 2048 bits) or ECDSA (P-256, P-384, P-521)
// public keys or certificates.
func NewVerifier(cfg Config) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		userIDClaim: cfg.UserIDClaim,
		rolesClaim:  cfg.RolesClaim,
		issuer:      cfg.Issuer,
		audience:    cfg.Audience,
		leeway:      cfg.Leeway,
		ecKeys:      make(map[string][]jwt.VerificationKey),
	}
	if len(cfg.HSSecret) > 0 {
		v.hsSecret = slices.Clone(cfg.HSSecret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if len(bytes.TrimSpace(cfg.PublicKeysPEM)) > 0 {
		keys, err := parsePublicKeys(cfg.PublicKeysPEM)
		if err != nil {
			return nil, fmt.Errorf("PublicKeysPEM: %w", err)
		}
		for _, k := range keys {
			switch k := k.(type) {
			case *rsa.PublicKey:
				v.rsaKeys = append(v.rsaKeys, k)
			case *ecdsa.PublicKey:
				alg := ecdsaAlg(k.Curve)
				v.ecKeys[alg] = append(v.ecKeys[alg], k)
			}
		}
		if len(v.rsaKeys) > 0 {
			v.methods = append(v.methods,
				jwt.SigningMethodRS256.Alg(), jwt.SigningMethodRS384.Alg(), jwt.SigningMethodRS512.Alg())
		}
		for _, alg := range []string{"ES256", "ES384", "ES512"} {
			if len(v.ecKeys[alg]) > 0 {
				v.methods = append(v.methods, alg)
			}
		}
	}
	return v, nil
}

// parsePublicKeys decodes every PEM block in data into an RSA or ECDSA
// public key. Errors name the block by its 1-based index.
func parsePublicKeys(data []byte) ([]any, error) {
	var keys []any
	rest := data
	for i := 1; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := parsePublicKeyBlock(block)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM blocks found")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	return keys, nil
}

// parsePublicKeyBlock returns the RSA or ECDSA public key in one PEM block.
func parsePublicKeyBlock(block *pem.Block) (any, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	default:
		// Never echo the block: it may be a private key pasted by mistake.
		return nil, fmt.Errorf("unsupported PEM block type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", strings.ToLower(block.Type), err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if ecdsaAlg(k.Curve) == "" {
			return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported public key type %T", key)
	}
}

// ecdsaAlg returns the JWS algorithm for an ECDSA curve, or "" if the curve
// has none.
func ecdsaAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// Verify checks token's signature and claims as of now and returns the
// Principal it identifies. The token must carry an exp claim; nbf and iat,
// when present, must not be in the future beyond the configured leeway. The
// user-id claim must be a non-empty string or a non-negative integer, at most
// 64 characters from [A-Za-z0-9._:-]. The roles claim, which is optional, is
// an array of strings or one string separated by spaces or commas; roles
// roomlog does not know are dropped.
//
// Every error is a *domain.Error with Code domain.CodeUnauthorized and
// Message "unauthorized"; its Err says why, for logs only.
func (v *Verifier) Verify(token string, now time.Time) (domain.Principal, error) {
	p, err := v.verify(token, now)
	if err != nil {
		return domain.Principal{}, &domain.Error{
			Code:    domain.CodeUnauthorized,
			Message: unauthorizedMessage,
			Err:     fmt.Errorf("verify token: %w", err),
		}
	}
	return p, nil
}

func (v *Verifier) verify(token string, now time.Time) (domain.Principal, error) {
	if token == "" {
		return domain.Principal{}, errors.New("token is empty")
	}
	if len(v.methods) == 0 {
		// Only a Verifier not built by NewVerifier gets here; an empty
		// method list would switch the parser's algorithm check off.
		return domain.Principal{}, errors.New("verifier has no keys")
	}
	if len(token) > maxTokenLen {
		return domain.Principal{}, fmt.Errorf("token is %d bytes, limit %d", len(token), maxTokenLen)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// Numbers stay json.Number so a numeric user id keeps every digit.
		jwt.WithJSONNumber(),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, v.key); err != nil {
		return domain.Principal{}, err
	}
	userID, err := userIDFromClaim(claims[v.userIDClaim])
	if err != nil {
		return domain.Principal{}, fmt.Errorf("claim %q: %w", v.userIDClaim, err)
	}
	roles, err := rolesFromClaim(claims[v.rolesClaim])
	if err != nil {
		return domain.Principal{}, fmt.Errorf("claim %q: %w", v.rolesClaim, err)
	}
	p := domain.Principal{UserID: userID, Roles: roles}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.ExpiresAt = exp.Time
	}
	return p, nil
}

// key is the jwt.Keyfunc. It picks the verification key by the family of
// the signing method, so an HMAC token is only ever checked against the HS
// secret and never against public key bytes. WithValidMethods has already
// limited the algorithm to those the configured keys allow.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a token with critical extensions we do not
	// understand must be rejected; we understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("crit header is not supported")
	}
	switch m := t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.hsSecret) == 0 || m.Alg() != jwt.SigningMethodHS256.Alg() {
			return nil, fmt.Errorf("signing method %s is not allowed", m.Alg())
		}
		return v.hsSecret, nil
	case *jwt.SigningMethodRSA:
		if len(v.rsaKeys) == 0 {
			return nil, fmt.Errorf("signing method %s is not allowed", m.Alg())
		}
		return jwt.VerificationKeySet{Keys: v.rsaKeys}, nil
	case *jwt.SigningMethodECDSA:
		keys := v.ecKeys[m.Alg()]
		if len(keys) == 0 {
			return nil, fmt.Errorf("signing method %s is not allowed", m.Alg())
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	default:
		return nil, fmt.Errorf("signing method %s is not allowed", t.Method.Alg())
	}
}

// userIDFromClaim returns the user id in a claim value: a string, or a
// non-negative integral JSON number formatted in base 10.
func userIDFromClaim(raw any) (string, error) {
	var id string
	switch x := raw.(type) {
	case nil:
		return "", errors.New("missing")
	case string:
		id = x
	case json.Number:
		n, err := integerString(x)
		if err != nil {
			return "", err
		}
		id = n
	default:
		return "", fmt.Errorf("must be a string or an integer, got %T", raw)
	}
	if id == "" {
		return "", errors.New("is empty")
	}
	if !userIDPattern.MatchString(id) {
		return "", errors.New("must be 1-64 characters from [A-Za-z0-9._:-]")
	}
	return id, nil
}

// integerString formats a JSON number that holds a non-negative integer,
// such as 42, 42.0 or 4.2e1, as "42".
func integerString(n json.Number) (string, error) {
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		if i < 0 {
			return "", errors.New("must not be negative")
		}
		return strconv.FormatInt(i, 10), nil
	}
	f, err := n.Float64()
	// 2^53 is the largest range in which every integer is exact in a float64.
	if err != nil || f != math.Trunc(f) || f < 0 || f > 1<<53 {
		return "", errors.New("must be a non-negative integer")
	}
	return strconv.FormatInt(int64(f), 10), nil
}

// rolesFromClaim returns the known roles in a claim value: an array of
// strings, or one string of roles separated by spaces or commas. A missing
// claim means no roles. Duplicates are dropped and the order is kept.
func rolesFromClaim(raw any) ([]domain.Role, error) {
	var names []string
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case string:
		names = strings.FieldsFunc(x, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
		})
	case []any:
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d must be a string, got %T", i, e)
			}
			names = append(names, s)
		}
	default:
		return nil, fmt.Errorf("must be an array of strings or a string, got %T", raw)
	}
	var roles []domain.Role
	for _, n := range names {
		r := domain.Role(strings.TrimSpace(n))
		if knownRole(r) && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

// knownRole reports whether r is a role roomlog understands. Tokens from a
// shared identity provider may carry others; those are ignored.
func knownRole(r domain.Role) bool {
	switch r {
	case domain.RoleBuyer, domain.RoleSeller, domain.RoleAdmin, domain.RoleAuditor:
		return true
	}
	return false
}
