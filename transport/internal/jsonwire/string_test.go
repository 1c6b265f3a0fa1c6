package jsonwire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// stringCases are the inputs of the table tests and the fuzz seeds.
var stringCases = []string{
	"",
	"global",
	"user-42",
	"chat-message-sent",
	"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
	`say "hi"`,
	`back\slash`,
	"tab\there",
	"nul\x00",
	"del\x7f",
	"<b>&amp;</b>",
	"naïve",
	"line\u2028sep\u2029",
	"bad utf-8 \xff\xfe",
	"emoji 🎉",
}

// refString is s as a json.Encoder writes it, HTML escaping html.
func refString(t testing.TB, s string, html bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// checkString compares both appenders with encoding/json for s, appending
// to a non-empty buffer so that a helper that drops the prefix fails.
func checkString(t testing.TB, s string) {
	t.Helper()
	prefix := []byte("x,")
	for _, tc := range []struct {
		name   string
		html   bool
		append func([]byte, string) []byte
	}{
		{"AppendString", false, AppendString},
		{"AppendStringHTML", true, AppendStringHTML},
	} {
		want := append(append([]byte(nil), prefix...), refString(t, s, tc.html)...)
		got := tc.append(append([]byte(nil), prefix...), s)
		if !bytes.Equal(got, want) {
			t.Errorf("%s(%q) = %q, want %q", tc.name, s, got, want)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range stringCases {
		checkString(t, s)
	}
}

func TestNeedsEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", false},
		{"user-42", false},
		{"<>&", false},
		{`"`, true},
		{`\`, true},
		{"\n", true},
		{"\x7f", false},
		{"é", true},
	} {
		if got := NeedsEscape(tc.s); got != tc.want {
			t.Errorf("NeedsEscape(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkString(t, s)
	})
}
