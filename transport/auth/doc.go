// Package auth verifies the credentials roomlog accepts: JSON Web Tokens that
// identify users of sockets and HTTP requests, and static API keys that
// identify event producers.
//
// # Overview
//
// A [Verifier] checks a token's signature and registered claims (exp, nbf,
// iat, and optionally iss and aud) and turns its user-id and roles claims
// into a [domain.Principal]. The signing algorithm is chosen by the kind of
// key that is configured, never by the token's header alone: HS256 is
// accepted only when an HMAC secret is configured, RS256/RS384/RS512 only
// with a configured RSA public key and ES256/ES384/ES512 only with an ECDSA
// public key on the matching curve. Tokens with "alg": "none", and HMAC
// tokens forged with a public key as the secret, are rejected.
//
// Every verification failure is a *domain.Error with code
// [domain.CodeUnauthorized] and the generic message "unauthorized"; the
// specific reason is wrapped in its Err field for the logs and is never meant
// for the caller.
//
// [APIKeys] holds the producers' API keys as SHA-256 digests and looks a
// presented key up in constant time.
//
// [TokenFromRequest] and [APIKeyFromRequest] extract credentials from an
// HTTP request (or a Socket.IO handshake) without judging them.
//
// Nothing in this package reads the clock: callers pass the current time in.
package auth
