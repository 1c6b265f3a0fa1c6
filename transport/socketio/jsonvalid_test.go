package socketio

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// jsonCases are valid and invalid JSON texts around every rule of the
// quick path (domain.QuickCheckJSON) and of JSON's grammar.
var jsonCases = []string{
	`{"i":1,"pad":"xxxx"}`, `{}`, `[]`, ` { } `, "\t[ ]\n", `{"a":[1,2,{"b":null}],"c":true,"d":false}`,
	`"s"`, `""`, `0`, `-0`, `1.5`, `-1.5e3`, `1E+2`, `2e-2`, `123456789012345678901234567890`,
	`true`, `false`, `null`, `"é \u2028 \" \\ \/ \b \f \n \r \t \u00e9 \uD83D"`, "\"\x7f\xff\xfe\"",
	`{"a" : 1 , "b" :[ 1 , 2 ] }`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	// invalid
	``, ` `, `{`, `}`, `[`, `]`, `{]`, `[}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{1:2}`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x1`, `tru`, `truex`, `trueX`, `nul`, `nulll`, `True`, `"a`, `"\x"`,
	`"\u12"`, `"\u12g4"`, "\"a\x01\"", "\"\n\"", `1 2`, `{} {}`, `"a" "b"`, `{"a":1}}`, `[1]]`, `NaN`, `Infinity`,
	`{"a":1 "b":2}`, `[1 2]`, `{"a" 1}`, "\x00", `'a'`, `{"a":[}`, `[{]`,
}

func TestValidJSON(t *testing.T) {
	t.Parallel()
	for _, s := range jsonCases {
		p := []byte(s)
		want := json.Valid(p)
		if got := validJSON(p); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid %v", s, got, want)
		}
		if domain.QuickCheckJSON(p) && !want {
			t.Errorf("domain.QuickCheckJSON(%q) vouched for invalid JSON", s)
		}
	}
	// The usual payloads take the quick path.
	for _, s := range []string{`{"i":1,"pad":"` + strings.Repeat("x", 160) + `"}`, `{"requestId":"r1","offer":{"price":"1.50"},"sellerId":"s1"}`,
		`{"s":"a \" b \\","n":-1.5,"l":[true,false,null]}`, `[]`, `"x"`, `0`} {
		if !domain.QuickCheckJSON([]byte(s)) {
			t.Errorf("domain.QuickCheckJSON(%q) = false", s)
		}
	}
	deep := strings.Repeat("[", domain.MaxPayloadDepth+1) + strings.Repeat("]", domain.MaxPayloadDepth+1)
	if domain.QuickCheckJSON([]byte(deep)) || !validJSON([]byte(deep)) {
		t.Errorf("nesting deeper than %d: quick %v, valid %v", domain.MaxPayloadDepth, domain.QuickCheckJSON([]byte(deep)), validJSON([]byte(deep)))
	}
}

// FuzzValidJSON: validJSON agrees with json.Valid on every input, and
// domain.QuickCheckJSON never vouches for invalid JSON.
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		want := json.Valid(p)
		if domain.QuickCheckJSON(p) && !want {
			t.Fatalf("domain.QuickCheckJSON(%q) vouched for invalid JSON", p)
		}
		if got := validJSON(p); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", p, got, want)
		}
	})
}
