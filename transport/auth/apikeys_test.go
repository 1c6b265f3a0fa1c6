package auth

import (
	"reflect"
	"strings"
	"testing"
)

const (
	keyA = "aaaaaaaaaaaaaaaa-key-a"
	keyB = "bbbbbbbbbbbbbbbb:key:b"
)

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantErr   string // substring; "" means success
		secret    string // must not appear in the error
	}{
		{name: "Empty", in: "", wantNames: nil},
		{name: "Blank", in: "  ", wantNames: nil},
		{name: "One", in: "billing:" + keyA, wantNames: []string{"billing"}},
		{name: "TwoWithSpaces", in: " billing : " + keyA + " ,  search.v2:" + keyB + " ", wantNames: []string{"billing", "search.v2"}},
		{name: "KeyWithColons", in: "x:" + keyB, wantNames: []string{"x"}},
		{name: "MinLengthKey", in: "x:" + strings.Repeat("k", 16), wantNames: []string{"x"}},
		{name: "NoColon", in: "billing:" + keyA + "," + "cccccccccccccccccccc", wantErr: "entry 2: want name:key", secret: "cccccccccccccccccccc"},
		{name: "EmptyEntry", in: "billing:" + keyA + ",", wantErr: "entry 2 is empty"},
		{name: "EmptyName", in: ":" + keyA, wantErr: "entry 1: name", secret: keyA},
		{name: "BadName", in: "bil ling:" + keyA, wantErr: "entry 1: name", secret: keyA},
		{name: "LongName", in: strings.Repeat("n", 65) + ":" + keyA, wantErr: "entry 1: name"},
		{name: "ShortKey", in: "a:" + keyA + ",b:shortkey123", wantErr: "entry 2: key must be at least 16", secret: "shortkey123"},
		{name: "EmptyKey", in: "a:", wantErr: "entry 1: key must be at least 16"},
		{name: "KeyWithSpace", in: "a:aaaaaaaa bbbbbbbbbb", wantErr: "entry 1: key must be printable", secret: "aaaaaaaa bbbbbbbbbb"},
		{name: "KeyNonASCII", in: "a:ключключключключ", wantErr: "entry 1: key must be printable", secret: "ключ"},
		{name: "KeyTooLong", in: "a:" + strings.Repeat("k", 513), wantErr: "entry 1: key must be at most", secret: strings.Repeat("k", 513)},
		{name: "DuplicateName", in: "a:" + keyA + ",a:" + keyB, wantErr: "entry 2: name duplicates entry 1", secret: keyB},
		{name: "DuplicateKey", in: "a:" + keyA + ",b:" + keyB + ",c:" + keyA, wantErr: "entry 3: key duplicates entry 1", secret: keyA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseAPIKeys(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAPIKeys() error = nil, want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseAPIKeys() error = %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("ParseAPIKeys() error leaks the key: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAPIKeys() error = %v", err)
			}
			if got := k.Names(); !reflect.DeepEqual(got, tt.wantNames) {
				t.Errorf("Names() = %q, want %q", got, tt.wantNames)
			}
			if k.Len() != len(tt.wantNames) {
				t.Errorf("Len() = %d, want %d", k.Len(), len(tt.wantNames))
			}
		})
	}
}

func TestAPIKeysLookup(t *testing.T) {
	t.Parallel()

	k, err := ParseAPIKeys("billing:" + keyA + ",search:" + keyB)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		keys      *APIKeys
		presented string
		wantName  string
		wantOK    bool
	}{
		{name: "First", keys: k, presented: keyA, wantName: "billing", wantOK: true},
		{name: "Last", keys: k, presented: keyB, wantName: "search", wantOK: true},
		{name: "Miss", keys: k, presented: "cccccccccccccccccccc"},
		{name: "Prefix", keys: k, presented: keyA[:len(keyA)-1]},
		{name: "Longer", keys: k, presented: keyA + "x"},
		{name: "Name", keys: k, presented: "billing"},
		{name: "EmptyPresented", keys: k, presented: ""},
		{name: "NilSet", keys: nil, presented: keyA},
		{name: "EmptySet", keys: &APIKeys{}, presented: keyA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name, ok := tt.keys.Lookup(tt.presented)
			if name != tt.wantName || ok != tt.wantOK {
				t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.presented, name, ok, tt.wantName, tt.wantOK)
			}
		})
	}
}

func TestAPIKeysNamesIsCopy(t *testing.T) {
	t.Parallel()
	k, err := ParseAPIKeys("billing:" + keyA)
	if err != nil {
		t.Fatal(err)
	}
	k.Names()[0] = "changed"
	if got := k.Names()[0]; got != "billing" {
		t.Errorf("Names()[0] = %q after mutating a copy, want billing", got)
	}
	if name, ok := k.Lookup(keyA); name != "billing" || !ok {
		t.Errorf("Lookup() = %q, %v; want billing, true", name, ok)
	}
	var nilKeys *APIKeys
	if nilKeys.Len() != 0 || nilKeys.Names() != nil {
		t.Errorf("nil *APIKeys: Len() = %d, Names() = %v; want 0, nil", nilKeys.Len(), nilKeys.Names())
	}
}
