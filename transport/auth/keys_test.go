package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testSecret is a 32-byte HS256 secret.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testNow is the fixed clock every test verifies against.
var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testKeys holds key pairs shared by all tests; RSA generation is slow, so
// they are made once.
type testKeys struct {
	rsa        *rsa.PrivateKey
	rsaPEM     []byte // PKIX "PUBLIC KEY"
	rsaPKCS1   []byte // "RSA PUBLIC KEY"
	rsaCertPEM []byte // self-signed "CERTIFICATE"
	ec256      *ecdsa.PrivateKey
	ec256PEM   []byte
	ec384      *ecdsa.PrivateKey
	ec384PEM   []byte
}

var loadTestKeys = sync.OnceValues(func() (*testKeys, error) {
	k := &testKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsaPEM, err = publicPEM(k.rsa.Public()); err != nil {
		return nil, err
	}
	k.rsaPKCS1 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "roomlog test"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.rsa.Public(), k.rsa)
	if err != nil {
		return nil, err
	}
	k.rsaCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec256PEM, err = publicPEM(k.ec256.Public()); err != nil {
		return nil, err
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec384PEM, err = publicPEM(k.ec384.Public()); err != nil {
		return nil, err
	}
	return k, nil
})

func keys(tb testing.TB) *testKeys {
	tb.Helper()
	k, err := loadTestKeys()
	if err != nil {
		tb.Fatalf("generate test keys: %v", err)
	}
	return k
}

func publicPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func mustPublicPEM(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	b, err := publicPEM(pub)
	if err != nil {
		tb.Fatalf("marshal public key: %v", err)
	}
	return b
}

func ed25519PEM(tb testing.TB) []byte {
	tb.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return mustPublicPEM(tb, pub)
}

// claims returns valid claims for user-1 as a buyer at testNow, changed by
// edit; edit may delete keys.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "user-1",
		"roles": []string{"buyer"},
		"iat":   testNow.Unix(),
		"nbf":   testNow.Unix(),
		"exp":   testNow.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// sign signs c with method and key using jwt directly.
func sign(tb testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// unsigned builds a token by hand from header and claims with an empty
// signature, as an attacker would for "alg": "none".
func unsigned(tb testing.TB, header map[string]any, c jwt.MapClaims) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}
