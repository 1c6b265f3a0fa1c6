package domain

import (
	"bytes"
	"encoding/json"
	"sync"
	"unicode/utf8"
)

// The fast path of payload validation.
//
// checkJSON walks a payload with encoding/json's token decoder: exact, and
// its error messages are the ones producers see, but it allocates for
// every token and a map for every object, and the validator then decoded
// the payload a second time into a map of members. With the publish
// body's own token-by-token decoding, that was a tenth of roomlogd's CPU
// at 2,400 publishes/s.
//
// quickPayload settles the usual payload in one pass without allocating:
// it vouches for a payload only when it is certain checkJSON accepts it,
// and it returns the top-level members it found. Everything it is not sure
// of (any error, a key with an escape or a non-ASCII byte, a surrogate
// escape, an exponent, a very long number, an object with many keys, deep
// nesting) goes to checkJSON, so every message a producer can see still
// comes from checkJSON. FuzzQuickPayload holds the two to that contract.

// quickMaxKeys bounds the keys of one object that quickPayload compares
// pairwise for duplicates; larger objects go to checkJSON.
const quickMaxKeys = 64

// span is where a key or value lies in the scanned input: p[start:end].
// The scanner keeps offsets, not slices, so its pooled scratch space holds
// no pointer into a payload.
type span struct{ start, end int }

// quickMember is one member of a payload's top-level object: the key
// (ASCII, no escapes, so its bytes are its value) and the value; or one
// element of a top-level array (key unused).
type quickMember struct {
	key, value span
}

// quickScanner holds quickPayload's state between calls, so that the
// scratch space is reused.
type quickScanner struct {
	keys    []span        // keys of the open objects, innermost last
	members []quickMember // the top-level object's members or array's elements
}

// memberMap returns the members quickPayload found in p, as
// json.Unmarshal into a map[string]json.RawMessage would; the values are
// slices of p.
func (q *quickScanner) memberMap(p []byte) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(q.members))
	for _, mem := range q.members {
		m[string(p[mem.key.start:mem.key.end])] = p[mem.value.start:mem.value.end]
	}
	return m
}

// QuickCheckJSON reports true only if p is certainly one well-formed JSON
// value that payload validation accepts: valid UTF-8, nesting at most
// MaxPayloadDepth, no key repeated (ignoring case), no \u0000 or
// surrogate escape, no exponent. It is one pass and, its scratch space
// pooled, does not allocate.
// False says nothing: p may be valid but unusual, or invalid. A caller
// that must know asks encoding/json then (json.Valid, or checkJSON's
// rules through EventSpec.Validate).
func QuickCheckJSON(p []byte) bool {
	q := getScanner()
	defer putScanner(q)
	return q.quickPayload(p)
}

// ScanObject reports whether p is certainly a JSON object that payload
// validation accepts as well-formed: one object, valid UTF-8, nesting at
// most MaxPayloadDepth, no key repeated (ignoring case), no \u0000 or
// unpaired surrogate escape, finite numbers. If so, it calls each for the
// object's members in order, with the key's bytes (ASCII, no escapes, so
// they are its value) and the value's, both slices of p. False says
// nothing: p may be valid but unusual, or invalid; a caller then decodes
// it with encoding/json, which explains what is wrong.
func ScanObject(p []byte, each func(key, value []byte)) bool {
	q := getScanner()
	defer putScanner(q)
	if !q.quickPayload(p) || kindOf(p) != '{' {
		return false
	}
	for _, m := range q.members {
		each(p[m.key.start:m.key.end], p[m.value.start:m.value.end])
	}
	return true
}

// ScanArray is ScanObject for a JSON array: if p is certainly an array
// that payload validation accepts as well-formed, it calls each for the
// elements in order (slices of p) and reports true.
func ScanArray(p []byte, each func(elem []byte)) bool {
	q := getScanner()
	defer putScanner(q)
	if !q.quickPayload(p) || kindOf(p) != '[' {
		return false
	}
	for _, m := range q.members {
		each(p[m.value.start:m.value.end])
	}
	return true
}

// objectMembers is json.Unmarshal of p into a map[string]json.RawMessage
// (nil and an error if p is not a JSON object), in one pass when the fast
// path vouches for p. The values are slices of p.
func objectMembers(p []byte) (map[string]json.RawMessage, error) {
	q := getScanner()
	defer putScanner(q)
	if q.quickPayload(p) && kindOf(p) == '{' {
		return q.memberMap(p), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// quickScanners pools the fast path's scratch space.
var quickScanners = sync.Pool{New: func() any { return new(quickScanner) }}

// getScanner takes a scanner from the pool; putScanner returns it.
func getScanner() *quickScanner { return quickScanners.Get().(*quickScanner) }

// putScanner returns q to the pool; scratch space grown past quickKeepCap
// (a large array's elements) is dropped rather than kept.
func putScanner(q *quickScanner) {
	if cap(q.keys) > quickKeepCap {
		q.keys = nil
	}
	if cap(q.members) > quickKeepCap {
		q.members = nil
	}
	quickScanners.Put(q)
}

// quickKeepCap is the most keys or members a pooled scanner keeps room for.
const quickKeepCap = 256

// quickPayload reports true only if checkJSON(p) would return nil, in which
// case q.members holds the top-level object's members, or the top-level
// array's elements, in order (none for other values). False means invalid
// or not checked here.
func (q *quickScanner) quickPayload(p []byte) bool {
	q.members = q.members[:0]
	q.keys = q.keys[:0]
	if !utf8.Valid(p) {
		return false
	}
	type frame struct {
		object   bool
		start    int // where the container starts in p
		keysFrom int // index into q.keys of this object's first key
	}
	var stack [MaxPayloadDepth]frame
	depth, n := 0, len(p)
	// member records the top-level object's member whose value is
	// p[start:end], once that value is complete.
	member := func(start, end int) {
		if depth != 1 {
			return
		}
		m := quickMember{value: span{start, end}}
		if stack[0].object {
			m.key = q.keys[len(q.keys)-1]
		}
		q.members = append(q.members, m)
	}
	i := skipWS(p, 0)
	for {
		// A value starts at i.
		if i >= n {
			return false
		}
		start := i
		switch c := p[i]; {
		case c == '{' || c == '[':
			if depth == MaxPayloadDepth {
				return false
			}
			stack[depth] = frame{object: c == '{', start: i, keysFrom: len(q.keys)}
			depth++
			i = skipWS(p, i+1)
			if i < n && p[i] == c+2 { // '}' or ']' at once: empty
				depth--
				i++
				break
			}
			if c == '{' {
				var ok bool
				if i, ok = q.key(p, i, stack[depth-1].keysFrom); !ok {
					return false
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = quickStr(p, i); !ok {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = quickNum(p, i); !ok {
				return false
			}
		case c == 't' && literalAt(p, i, "true"):
			i += 4
		case c == 'f' && literalAt(p, i, "false"):
			i += 5
		case c == 'n' && literalAt(p, i, "null"):
			i += 4
		default:
			return false
		}
		member(start, i) // a scalar or an empty container
		// After a value: a comma and the next value, or the end of the
		// innermost container (which completes a value in turn).
		for {
			i = skipWS(p, i)
			if depth == 0 {
				return i == n
			}
			if i >= n {
				return false
			}
			top := &stack[depth-1]
			if p[i] == ',' {
				i = skipWS(p, i+1)
				if top.object {
					var ok bool
					if i, ok = q.key(p, i, top.keysFrom); !ok {
						return false
					}
				}
				break
			}
			if top.object && p[i] != '}' || !top.object && p[i] != ']' {
				return false
			}
			q.keys = q.keys[:top.keysFrom]
			depth--
			i++
			member(stack[depth].start, i)
		}
	}
}

// key reads the member key that must start at i, then the colon, and
// returns where the value starts. It declines keys with escapes or
// non-ASCII bytes (checkJSON compares those by their Unicode case folds),
// a key equal, ignoring ASCII case, to an earlier key of the same object
// (from q.keys[from:]), and objects of more than quickMaxKeys keys.
func (q *quickScanner) key(p []byte, i, from int) (int, bool) {
	if i >= len(p) || p[i] != '"' {
		return i, false
	}
	j := i + 1
	for j < len(p) && p[j] != '"' {
		if c := p[j]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return j, false
		}
		j++
	}
	if j >= len(p) || len(q.keys)-from >= quickMaxKeys {
		return j, false
	}
	k := span{i + 1, j}
	for _, prev := range q.keys[from:] {
		// Both ASCII: EqualFold is ASCII case folding here.
		if bytes.EqualFold(p[prev.start:prev.end], p[k.start:k.end]) {
			return j, false
		}
	}
	q.keys = append(q.keys, k)
	j = skipWS(p, j+1)
	if j >= len(p) || p[j] != ':' {
		return j, false
	}
	return skipWS(p, j+1), true
}

// quickStr checks the string that starts with the quote at i and returns
// where it ends. It declines control characters (invalid), and \u escapes
// of U+0000 or of a surrogate (checkJSON rejects the first and unpaired
// surrogates; pairs are left to it).
func quickStr(p []byte, i int) (int, bool) {
	n := len(p)
	for i++; i < n; {
		switch c := p[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= n {
				return i, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(p, i+2)
				if !ok || r == 0 || 0xD800 <= r && r <= 0xDFFF {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

// quickMaxIntDigits is the most integer digits quickNum accepts: any
// decimal literal without an exponent and with at most this many digits
// before the point is a finite double (MaxFloat64 is about 1.8e308).
const quickMaxIntDigits = 300

// quickNum checks the number at i (-?(0|[1-9][0-9]*)(\.[0-9]+)?) and
// returns where it ends. It declines exponents (checkJSON bounds them) and
// integer parts too long to be sure the value is finite.
func quickNum(p []byte, i int) (int, bool) {
	n := len(p)
	if p[i] == '-' {
		i++
	}
	switch {
	case i < n && p[i] == '0':
		i++
	case i < n && p[i] >= '1' && p[i] <= '9':
		j := digitsEnd(p, i+1)
		if j-i > quickMaxIntDigits {
			return i, false
		}
		i = j
	default:
		return i, false
	}
	if i < n && p[i] == '.' {
		j := digitsEnd(p, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < n && (p[i] == 'e' || p[i] == 'E') {
		return i, false
	}
	return i, true
}

func digitsEnd(p []byte, i int) int {
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	return i
}

// literalAt reports whether p holds lit at i; what follows is checked by
// the caller like any byte after a value.
func literalAt(p []byte, i int, lit string) bool {
	return len(p)-i >= len(lit) && string(p[i:i+len(lit)]) == lit
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}
