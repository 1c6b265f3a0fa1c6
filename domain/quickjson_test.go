package domain

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// quickMembers runs the fast path on p and returns whether it vouched and
// the members it found, as a map.
func quickMembers(p []byte) (bool, map[string]string) {
	var q quickScanner
	if !q.quickPayload(p) {
		return false, nil
	}
	m := map[string]string{}
	if kindOf(p) == '{' {
		for k, v := range q.memberMap(p) {
			m[k] = string(v)
		}
	}
	return true, m
}

// quickElems returns the elements ScanArray finds in p (nil if it
// declines or p is not an array).
func quickElems(p []byte) []string {
	var elems []string
	if !ScanArray(p, func(e []byte) { elems = append(elems, string(e)) }) {
		return nil
	}
	return elems
}

// unmarshalElems is what encoding/json finds in p if it is an array (nil
// otherwise).
func unmarshalElems(t testing.TB, p []byte) []string {
	var raw []json.RawMessage
	if kindOf(p) != '[' || json.Unmarshal(p, &raw) != nil {
		return nil
	}
	elems := []string{}
	for _, e := range raw {
		elems = append(elems, string(e))
	}
	return elems
}

// unmarshalMembers is what the slow path hands the field checks.
func unmarshalMembers(t testing.TB, p []byte) map[string]string {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(p, &raw); err != nil {
		t.Fatalf("json.Unmarshal(%q): %v", p, err)
	}
	m := map[string]string{}
	for k, v := range raw {
		m[k] = string(v)
	}
	return m
}

// The payloads producers send every day must take the fast path, with the
// members encoding/json finds; otherwise the fast path is dead code.
func TestQuickPayloadVouches(t *testing.T) {
	for _, p := range []string{
		`{}`,
		` { "a" : 1 } `,
		`{"i":12,"pad":"` + strings.Repeat("x", 160) + `"}`,
		`{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"hi","senderId":"u1","createdAt":"2024-05-01T12:00:00Z"}}`,
		`{"requestId":"r1","offer":{"price":12.5,"items":[1,2,{"x":null}],"ok":true,"no":false},"sellerId":"s1"}`,
		`{"text":"héllo 世界 \"quoted\" \\ \/ \b\f\n\r\t \u00e9 \u003cb\u003e"}`,
		`{"a":[],"b":{},"c":[[[]]],"d":-0,"e":0.001,"f":-12345678901234567890}`,
		`{"id":"1","ID2":"2","Id3":{"id":"an object's keys are its own","Id3":"so neither repeats the outer keys"}}`,
		`[1,"two",{"three":3}]`,
		`"a string"`,
		`42`,
		`null`,
		"{\"depth\":" + strings.Repeat("[", MaxPayloadDepth-1) + strings.Repeat("]", MaxPayloadDepth-1) + "}",
		`{"n":` + strings.Repeat("9", quickMaxIntDigits) + `}`,
	} {
		ok, got := quickMembers([]byte(p))
		if !ok {
			t.Errorf("fast path declined %.80q", p)
			continue
		}
		if err := checkJSON([]byte(p)); err != nil {
			t.Errorf("fast path vouched for %.80q, checkJSON says %v", p, err)
		}
		if kindOf([]byte(p)) != '{' {
			if want := unmarshalElems(t, []byte(p)); fmt.Sprint(quickElems([]byte(p))) != fmt.Sprint(want) {
				t.Errorf("elements of %.80q: got %q, want %q", p, quickElems([]byte(p)), want)
			}
			continue
		}
		if want := unmarshalMembers(t, []byte(p)); !maps.Equal(got, want) {
			t.Errorf("members of %.80q:\n got %v\nwant %v", p, got, want)
		}
	}
}

// What the fast path is not sure of goes to checkJSON: every error, and
// valid payloads whose checks need checkJSON's full rules.
func TestQuickPayloadDeclines(t *testing.T) {
	for _, tc := range []struct {
		payload string
		valid   bool // checkJSON accepts it
	}{
		{``, false},
		{`   `, false},
		{`{`, false},
		{`{"a":1`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{a:1}`, false},
		{`[1,]`, false},
		{`{"a":1}{}`, false},
		{`{"a":1} x`, false},
		{`{"a":tru}`, false},
		{`{"a":truex}`, false},
		{`{"a":nul}`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":-}`, false},
		{`{"a":+1}`, false},
		{"{\"a\":\"\x01\"}", false},
		{"{\"a\":\"\xff\"}", false},
		{`{"a":"\x"}`, false},
		{`{"a":"\u00"}`, false},
		{`{"a":"\u0000"}`, false},
		{`{"a":"\ud800"}`, false},
		{`{"a":"\udc00"}`, false},
		{`{"a":1,"a":2}`, false},
		{`{"buyerId":1,"BuyerId":2}`, false},
		{`{"a":1e999}`, false},
		{"{\"depth\":" + strings.Repeat("[", MaxPayloadDepth) + strings.Repeat("]", MaxPayloadDepth) + "}", false},
		{"\u00a0{}", false},
		// Valid, but checked by checkJSON.
		{`{"a":"\ud83d\ude00"}`, true},
		{`{"a\u0062":1}`, true},
		{`{"é":1}`, true},
		{`{"k":1,"\u212a":2}`, false}, // KELVIN SIGN folds to k
		{`{"s":1,"ſ":2}`, false},      // LONG S folds to s
		{`{"a":1e3}`, true},
		{`{"a":1E-3}`, true},
		{`{"n":` + strings.Repeat("9", quickMaxIntDigits+1) + `}`, true},
		{`{"n":` + strings.Repeat("9", 400) + `}`, false},
		{"{" + manyKeys(quickMaxKeys+1) + "}", true},
		{"{\"depth\":" + strings.Repeat("{\"a\":", MaxPayloadDepth) + "1" + strings.Repeat("}", MaxPayloadDepth) + "}", false},
	} {
		if ok, _ := quickMembers([]byte(tc.payload)); ok {
			t.Errorf("fast path vouched for %.80q", tc.payload)
		}
		if err := checkJSON([]byte(tc.payload)); (err == nil) != tc.valid {
			t.Errorf("checkJSON(%.80q) = %v, want valid %v", tc.payload, err, tc.valid)
		}
	}
}

// manyKeys returns n distinct members "k0":0,"k1":1,...
func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

// The contract: the fast path vouches only for what checkJSON accepts, and
// then finds the members encoding/json finds.
func FuzzQuickPayload(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"b":[true,false,null,"x",{"c":-1.5}]}`, `{"a":1,"A":2}`,
		`{"a":"\u00e9\ud83d\ude00"}`, `{"a":1e5}`, `[{"a":{}}]`, `"x"`, `{"a":{"a":1},"b":{"a":2}}`,
		"{\"a\":\"\x7f\"}", `{"a" : [ 1 , 2 ] , "b" : { } }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ok, got := quickMembers(p)
		if !ok {
			return
		}
		if err := checkJSON(p); err != nil {
			t.Fatalf("fast path vouched for %q, checkJSON says %v", p, err)
		}
		if kindOf(p) == '{' {
			if want := unmarshalMembers(t, p); !maps.Equal(got, want) {
				t.Fatalf("members of %q:\n got %v\nwant %v", p, got, want)
			}
		}
		if kindOf(p) == '[' {
			if got, want := quickElems(p), unmarshalElems(t, p); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("elements of %q:\n got %q\nwant %q", p, got, want)
			}
		}
	})
}

// objectMembers is json.Unmarshal into a map of raw members, whichever
// path it takes.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":{"c":[2]}}`, `{"a":1,"a":2}`, `{"a\u0062":1}`, `null`, `[1]`, `{`, ` {"x" : "y"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := objectMembers(p)
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(p, &want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("objectMembers(%q) error %v, json.Unmarshal %v", p, err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("objectMembers(%q) = %q, json.Unmarshal %q", p, got, want)
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("objectMembers(%q)[%q] = %q, json.Unmarshal %q", p, k, got[k], v)
			}
		}
	})
}

// BenchmarkPayloadCheck prices validating a typical payload (an extension
// event's and a catalogue event's, whose members the field checks read):
// the fast path against checkJSON plus the member decoding the validator
// did before it, in the same process. It reports each one's time per
// payload and their ratio (below 1: the fast path is faster).
func BenchmarkPayloadCheck(b *testing.B) {
	payloads := [][]byte{
		[]byte(`{"i":12,"pad":"` + strings.Repeat("x", 160) + `"}`),
		[]byte(`{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"hi there","senderId":"u1","createdAt":"2024-05-01T12:00:00Z"}}`),
	}
	var quick, slow time.Duration
	v := validator{}
	b.ResetTimer()
	for i := range b.N {
		p := payloads[i%len(payloads)]
		t0 := time.Now()
		if _, ok := v.object(p, i%2 == 1); !ok {
			b.Fatal(v.errs)
		}
		t1 := time.Now()
		if err := checkJSON(p); err != nil {
			b.Fatal(err)
		}
		if i%2 == 1 {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(p, &obj); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		quick += t1.Sub(t0)
		slow += t2.Sub(t1)
	}
	b.ReportMetric(float64(quick.Nanoseconds())/float64(b.N), "ns/payload-quick")
	b.ReportMetric(float64(slow.Nanoseconds())/float64(b.N), "ns/payload-checkJSON")
	b.ReportMetric(float64(quick)/float64(slow), "quick/checkJSON")
}

func TestScanObject(t *testing.T) {
	body := []byte(`{"event":"x-bench","room":"user-1","payload":{"i":1,"pad":"xx"},"id":"k-1"}`)
	var keys, values []string
	if !ScanObject(body, func(k, v []byte) {
		keys = append(keys, string(k))
		values = append(values, string(v))
	}) {
		t.Fatalf("ScanObject declined %s", body)
	}
	wantKeys := []string{"event", "room", "payload", "id"}
	wantValues := []string{`"x-bench"`, `"user-1"`, `{"i":1,"pad":"xx"}`, `"k-1"`}
	if fmt.Sprint(keys) != fmt.Sprint(wantKeys) || fmt.Sprint(values) != fmt.Sprint(wantValues) {
		t.Fatalf("members %q = %q, want %q = %q", keys, values, wantKeys, wantValues)
	}
	if got := quickElems([]byte(` [ {"event":"x-a"} , [] , 2 ] `)); fmt.Sprint(got) != fmt.Sprint([]string{`{"event":"x-a"}`, `[]`, `2`}) {
		t.Fatalf("ScanArray elements = %q", got)
	}
	for _, p := range []string{`{}`, `[1,]`, `[1e3]`, `"x"`} {
		if quickElems([]byte(p)) != nil {
			t.Errorf("ScanArray(%q) vouched", p)
		}
	}
	for _, p := range []string{`[{"a":1}]`, `"x"`, `{"a":1,"a":2}`, `{"a":`, `{"a":1e3}`} {
		called := false
		if ScanObject([]byte(p), func(_, _ []byte) { called = true }) || called {
			t.Errorf("ScanObject(%q) vouched (or called back)", p)
		}
	}
}
