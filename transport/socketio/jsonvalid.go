package socketio

import "encoding/json"

// validJSON reports whether p is one JSON value, exactly as json.Valid
// does. A logged event's payload is checked once per event in the fan-out
// and once per replayed event in a recovery, where json.Valid was three
// fifths of encoding a frame; quickValid settles the usual payload much
// faster, and anything it does not vouch for goes to json.Valid.
func validJSON(p []byte) bool {
	return quickValid(p) || json.Valid(p)
}

// quickMaxDepth bounds the nesting quickValid follows; deeper values go
// to json.Valid.
const quickMaxDepth = 32

// quickValid reports true only for a valid JSON value (RFC 8259: the
// grammar json.Valid checks, surrounding whitespace allowed, any byte from
// 0x20 up inside strings), nested at most quickMaxDepth deep. False means
// invalid or not checked; validJSON then asks json.Valid.
func quickValid(p []byte) bool {
	var stack [quickMaxDepth]byte // '{' or '[' of each open container
	depth, i, n := 0, 0, len(p)
	wantValue := true
	for {
		i = skipSpace(p, i)
		if wantValue {
			if i >= n {
				return false
			}
			switch c := p[i]; {
			case c == '{' || c == '[':
				if depth == quickMaxDepth {
					return false
				}
				stack[depth] = c
				depth++
				i = skipSpace(p, i+1)
				if i < n && p[i] == c+2 { // '}' or ']' right away
					depth--
					i++
					wantValue = false
					continue
				}
				if c == '{' {
					var ok bool
					if i, ok = quickMember(p, i); !ok {
						return false
					}
				}
				continue
			case c == '"':
				var ok bool
				if i, ok = quickString(p, i); !ok {
					return false
				}
			case c == '-' || c >= '0' && c <= '9':
				var ok bool
				if i, ok = quickNumber(p, i); !ok {
					return false
				}
			case c == 't' && hasLiteral(p, i, "true"), c == 'f' && hasLiteral(p, i, "false"), c == 'n' && hasLiteral(p, i, "null"):
				for i < n && p[i] >= 'a' && p[i] <= 'z' {
					i++
				}
			default:
				return false
			}
			wantValue = false
			continue
		}
		if depth == 0 {
			return i == n
		}
		if i >= n {
			return false
		}
		switch p[i] {
		case ',':
			i++
			if stack[depth-1] == '{' {
				var ok bool
				if i, ok = quickMember(p, skipSpace(p, i)); !ok {
					return false
				}
			}
			wantValue = true
		case stack[depth-1] + 2: // the matching '}' or ']'
			depth--
			i++
		default:
			return false
		}
	}
}

// hasLiteral reports whether p holds lit at i, not followed by another
// letter (quickValid steps over the letters).
func hasLiteral(p []byte, i int, lit string) bool {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return false
	}
	j := i + len(lit)
	return j == len(p) || p[j] < 'a' || p[j] > 'z'
}

// quickMember checks an object member's key and colon at i and returns
// where its value starts.
func quickMember(p []byte, i int) (int, bool) {
	if i >= len(p) || p[i] != '"' {
		return i, false
	}
	i, ok := quickString(p, i)
	if !ok {
		return i, false
	}
	i = skipSpace(p, i)
	if i >= len(p) || p[i] != ':' {
		return i, false
	}
	return i + 1, true
}

// quickString checks the string that starts with the quote at i and
// returns where it ends.
func quickString(p []byte, i int) (int, bool) {
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
				if i+6 > n || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
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

// quickNumber checks the number at i (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)
// and returns where it ends.
func quickNumber(p []byte, i int) (int, bool) {
	n := len(p)
	if p[i] == '-' {
		i++
	}
	switch {
	case i < n && p[i] == '0':
		i++
	case i < n && p[i] >= '1' && p[i] <= '9':
		i = skipDigits(p, i+1)
	default:
		return i, false
	}
	if i < n && p[i] == '.' {
		j := skipDigits(p, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < n && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < n && (p[i] == '+' || p[i] == '-') {
			i++
		}
		j := skipDigits(p, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func skipDigits(p []byte, i int) int {
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	return i
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
