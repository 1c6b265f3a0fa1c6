package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// MinAPIKeyLen is the shortest API key ParseAPIKeys accepts, in characters.
const MinAPIKeyLen = 16

// maxAPIKeyLen bounds a configured key; keys travel in HTTP headers.
const maxAPIKeyLen = 512

// apiKeyNamePattern is the charset and length of an API key's name, the
// producer name recorded on the events it publishes.
var apiKeyNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// APIKeys is the set of producers' API keys. It keeps only SHA-256 digests of
// the keys, never the keys themselves. It is immutable after ParseAPIKeys and
// safe for concurrent use. A nil *APIKeys is an empty set.
type APIKeys struct {
	names   []string
	digests [][sha256.Size]byte
}

// ParseAPIKeys parses a comma-separated list of name:key entries, such as
// "billing:8f1c...,search:77ab...". Spaces around entries, names and keys are
// trimmed. A name is 1-64 characters from [A-Za-z0-9._-]; a key is at least
// MinAPIKeyLen printable ASCII characters without spaces or commas and may
// contain colons. Names and keys must be unique. A blank s yields an empty
// set. Errors name the entry by its 1-based index and never include a key.
func ParseAPIKeys(s string) (*APIKeys, error) {
	k := &APIKeys{}
	if strings.TrimSpace(s) == "" {
		return k, nil
	}
	for i, entry := range strings.Split(s, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("api keys: entry %d is empty", n)
		}
		name, key, ok := strings.Cut(entry, ":")
		if !ok {
			// Without a colon the whole entry may be a key: say nothing of it.
			return nil, fmt.Errorf("api keys: entry %d: want name:key", n)
		}
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		if !apiKeyNamePattern.MatchString(name) {
			return nil, fmt.Errorf("api keys: entry %d: name must be 1-64 characters from [A-Za-z0-9._-]", n)
		}
		if err := checkAPIKey(key); err != nil {
			return nil, fmt.Errorf("api keys: entry %d: %w", n, err)
		}
		if j := slices.Index(k.names, name); j >= 0 {
			return nil, fmt.Errorf("api keys: entry %d: name duplicates entry %d", n, j+1)
		}
		d := sha256.Sum256([]byte(key))
		if j := slices.Index(k.digests, d); j >= 0 {
			return nil, fmt.Errorf("api keys: entry %d: key duplicates entry %d", n, j+1)
		}
		k.names = append(k.names, name)
		k.digests = append(k.digests, d)
	}
	return k, nil
}

// checkAPIKey validates one key's length and charset. Its errors never
// include the key.
func checkAPIKey(key string) error {
	if len(key) < MinAPIKeyLen {
		return fmt.Errorf("key must be at least %d characters", MinAPIKeyLen)
	}
	if len(key) > maxAPIKeyLen {
		return fmt.Errorf("key must be at most %d characters", maxAPIKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return errors.New("key must be printable ASCII without spaces")
		}
	}
	return nil
}

// Lookup returns the name of the configured key equal to presented. It
// compares SHA-256 digests with subtle.ConstantTimeCompare against every
// configured key, without stopping at a match, so its timing reveals neither
// which key matched nor how much of a key was right.
func (k *APIKeys) Lookup(presented string) (name string, ok bool) {
	if k == nil || presented == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i := range k.digests {
		eq := subtle.ConstantTimeCompare(d[:], k.digests[i][:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", false
	}
	return k.names[match], true
}

// Len returns the number of configured keys.
func (k *APIKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.names)
}

// Names returns the configured keys' names in configuration order. The
// slice is a copy.
func (k *APIKeys) Names() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.names)
}
