package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxPayloadDepth is how deeply objects and arrays may nest in a payload;
// the payload object itself is depth 1. It bounds the work and stack that
// hostile input can cost any consumer of the log.
const MaxPayloadDepth = 32

// MaxFieldErrors is the most field errors one validation reports.
const MaxFieldErrors = 32

// maxExponent bounds the exponent of a number literal. PostgreSQL's numeric
// type, which jsonb uses for numbers, rejects exponents beyond ±1000.
const maxExponent = 1000

// validator collects field errors, up to MaxFieldErrors.
type validator struct {
	errs []FieldError
}

func (v *validator) add(field, msg string) {
	if len(v.errs) < MaxFieldErrors {
		v.errs = append(v.errs, FieldError{Field: field, Message: msg})
	}
}

// object checks that payload is well-formed JSON within roomlog's limits and
// is an object, and returns its members if members is set (nil otherwise).
func (v *validator) object(payload json.RawMessage, members bool) (map[string]json.RawMessage, bool) {
	q := getScanner()
	defer putScanner(q)
	if q.quickPayload(payload) {
		if kindOf(payload) != '{' {
			v.add("payload", "must be a JSON object")
			return nil, false
		}
		if !members {
			return nil, true
		}
		return q.memberMap(payload), true
	}
	if err := checkJSON(payload); err != nil {
		v.add("payload", err.Error())
		return nil, false
	}
	if kindOf(payload) != '{' {
		v.add("payload", "must be a JSON object")
		return nil, false
	}
	if !members {
		return nil, true
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		// Unreachable after checkJSON; reported rather than trusted.
		v.add("payload", "must be a JSON object")
		return nil, false
	}
	return obj, true
}

// fields checks the members of obj, found at path, against specs.
func (v *validator) fields(path string, obj map[string]json.RawMessage, specs []FieldSpec) {
	for _, f := range specs {
		p := path + "." + f.Name
		raw, ok := obj[f.Name]
		if !ok || kindOf(raw) == 'n' {
			if f.Required {
				v.add(p, "is required")
			}
			continue
		}
		v.value(p, f, raw)
	}
}

// value checks one present, non-null value against f.
func (v *validator) value(path string, f FieldSpec, raw json.RawMessage) {
	k := kindOf(raw)
	switch f.Type {
	case FieldAny:
	case FieldString:
		s, ok := str(raw)
		if !ok {
			v.add(path, "must be a string")
			return
		}
		if len(f.Enum) > 0 && !containsString(f.Enum, s) {
			v.add(path, "must be one of "+quoteList(f.Enum))
		}
	case FieldID:
		if s, ok := str(raw); !ok || !validID(s) {
			v.add(path, fmt.Sprintf("must be an id: a string of 1 to %d characters of %s", MaxIDLen, IDCharset))
		}
	case FieldTime:
		s, ok := str(raw)
		if !ok {
			v.add(path, "must be an RFC 3339 timestamp string")
			return
		}
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			v.add(path, "must be an RFC 3339 timestamp string")
		}
	case FieldNumber:
		if k != '0' {
			v.add(path, "must be a number")
		}
	case FieldCount:
		if k != '0' || !isCount(string(bytes.TrimSpace(raw))) {
			v.add(path, "must be a non-negative integer")
		}
	case FieldAmount:
		switch k {
		case '0':
		case '"':
			if s, _ := str(raw); !isDecimal(s) {
				v.add(path, "must be a number or a decimal string such as \"12.50\"")
			}
		default:
			v.add(path, "must be a number or a decimal string such as \"12.50\"")
		}
	case FieldStringOrNumber:
		if k != '0' && k != '"' {
			v.add(path, "must be a string or a number")
		}
	case FieldBool:
		if k != 't' {
			v.add(path, "must be a boolean")
		}
	case FieldObject:
		if k != '{' {
			v.add(path, "must be an object")
			return
		}
		if len(f.Fields) > 0 {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil {
				v.fields(path, obj, f.Fields)
			}
		}
	case FieldArray:
		if k != '[' {
			v.add(path, "must be an array")
			return
		}
		if f.Elem != "" && f.Elem != FieldAny {
			var elems []json.RawMessage
			if json.Unmarshal(raw, &elems) != nil {
				return
			}
			for i, e := range elems {
				if len(v.errs) >= MaxFieldErrors {
					return
				}
				p := fmt.Sprintf("%s[%d]", path, i)
				if kindOf(e) == 'n' {
					v.add(p, "must not be null")
					continue
				}
				v.value(p, FieldSpec{Type: f.Elem}, e)
			}
		}
	default:
		// A FieldType the validator does not know is a bug in the table;
		// the catalogue test catches it. Reject rather than let it pass.
		v.add(path, "has a type roomlog cannot check: "+string(f.Type))
	}
}

// kindOf classifies a well-formed JSON value by its first byte: '{', '[',
// '"', '0' (number), 't' (boolean), 'n' (null) or 0 (empty or malformed).
func kindOf(raw []byte) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '{', '[', '"', 'n':
		return c
	case 't', 'f':
		return 't'
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return '0'
	}
	return 0
}

func str(raw []byte) (string, bool) {
	if kindOf(raw) != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isCount reports whether a number literal is a non-negative integer that
// fits an int64, written without fraction or exponent.
func isCount(lit string) bool {
	n, err := strconv.ParseInt(lit, 10, 64)
	return err == nil && n >= 0 && !strings.HasPrefix(lit, "-")
}

// isDecimal reports whether s is -?[0-9]+(\.[0-9]+)? with at most 100
// characters.
func isDecimal(s string) bool {
	if len(s) == 0 || len(s) > 100 {
		return false
	}
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasFrac || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// checkJSON reports whether b is exactly one well-formed JSON value that
// roomlog can store and every consumer can parse: valid UTF-8, nesting at
// most MaxPayloadDepth, no duplicate object keys (consumers disagree on
// which one wins; keys are compared ignoring case because encoding/json
// matches struct fields that way, so "buyerId" and "BuyerId" would both
// fill one field), no \u0000 and no unpaired surrogate escapes (PostgreSQL's
// jsonb rejects both), and every number a finite double (what JavaScript
// clients parse) with an exponent PostgreSQL accepts.
func checkJSON(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("must be a JSON object")
	}
	if !utf8.Valid(b) {
		return errors.New("must be valid UTF-8")
	}
	if err := checkEscapes(b); err != nil {
		return err
	}

	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]struct{}
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("must be well-formed JSON")
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := &stack[n-1]
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
			} else {
				key, _ := tok.(string) // the decoder only yields strings here
				folded := foldKey(key)
				if _, dup := top.keys[folded]; dup {
					return fmt.Errorf("must not repeat the key %s in one object (keys are compared ignoring case)", quoteShort(key))
				}
				top.keys[folded] = struct{}{}
				top.wantKey = false
			}
		} else {
			if n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true // the value after a key
			}
			switch t := tok.(type) {
			case json.Delim:
				switch t {
				case '{', '[':
					if len(stack) >= MaxPayloadDepth {
						return fmt.Errorf("must not nest objects and arrays more than %d deep", MaxPayloadDepth)
					}
					f := frame{object: t == '{', wantKey: t == '{'}
					if f.object {
						f.keys = make(map[string]struct{})
					}
					stack = append(stack, f)
				case ']':
					stack = stack[:len(stack)-1]
				}
			case json.Number:
				if err := checkNumber(string(t)); err != nil {
					return err
				}
			}
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("must be a single JSON value")
	}
	return nil
}

func checkNumber(lit string) error {
	// ParseFloat fails for literals beyond ±MaxFloat64, which JavaScript
	// would turn into Infinity.
	if _, err := strconv.ParseFloat(lit, 64); err != nil {
		return fmt.Errorf("number %s is out of range", quoteShort(lit))
	}
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return fmt.Errorf("number %s is out of range", quoteShort(lit))
		}
	}
	return nil
}

// checkEscapes rejects \u0000 and unpaired UTF-16 surrogate escapes. It
// relies on backslashes appearing in well-formed JSON only inside strings;
// malformed input is left for the decoder to reject.
func checkEscapes(b []byte) error {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++ // the escaped character; "\\" is skipped whole
		if i >= len(b) || b[i] != 'u' {
			continue
		}
		r, ok := hex4(b, i+1)
		if !ok {
			continue
		}
		i += 4
		switch {
		case r == 0:
			return errors.New(`must not contain \u0000`)
		case 0xDC00 <= r && r <= 0xDFFF:
			return errors.New("must not contain an unpaired UTF-16 surrogate escape")
		case 0xD800 <= r && r <= 0xDBFF:
			if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return errors.New("must not contain an unpaired UTF-16 surrogate escape")
			}
			lo, ok := hex4(b, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return errors.New("must not contain an unpaired UTF-16 surrogate escape")
			}
			i += 6
		}
	}
	return nil
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// foldKey folds a key the way encoding/json matches struct fields: two keys
// fold equal exactly when strings.EqualFold reports them equal.
func foldKey(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		// The smallest rune of r's fold orbit stands for the whole orbit.
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}
