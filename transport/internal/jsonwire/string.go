package jsonwire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// AppendString appends s as a JSON string exactly as a json.Encoder with
// SetEscapeHTML(false) writes it (without the trailing newline). Room,
// type and producer names and event ids are plain ASCII and are copied;
// anything else is left to encoding/json.
func AppendString(b []byte, s string) []byte {
	if NeedsEscape(s) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			// Unreachable: every Go string marshals.
			panic(fmt.Sprintf("jsonwire: marshal string: %v", err))
		}
		return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
	}
	return appendQuoted(b, s)
}

// AppendStringHTML appends s as a JSON string exactly as json.Marshal
// writes it, HTML escaping on (<, > and & become \u003c, \u003e and
// \u0026). Plain ASCII is copied; anything else is left to encoding/json.
func AppendStringHTML(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainHTMLByte[s[i]] {
			q, err := json.Marshal(s)
			if err != nil {
				// Unreachable: every Go string marshals.
				panic(fmt.Sprintf("jsonwire: marshal string: %v", err))
			}
			return append(b, q...)
		}
	}
	return appendQuoted(b, s)
}

// NeedsEscape reports whether s holds a byte that encoding/json (with
// HTML escaping off) does not copy as it is: a control character, a
// quote, a backslash or any non-ASCII byte. When it reports false,
// AppendString only puts s between quotes.
func NeedsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return true
		}
	}
	return false
}

// appendQuoted appends s between double quotes, as it is.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainByte marks the bytes NeedsEscape lets through; plainHTMLByte, those
// AppendStringHTML copies.
var plainByte, plainHTMLByte = func() (t, h [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
		h[c] = t[c] && c != '<' && c != '>' && c != '&'
	}
	return t, h
}()
