package httpapi

import "testing"

// TestInternalJSON: the fallback answered when an answer cannot be
// encoded is internalBody as writeJSON encodes it.
func TestInternalJSON(t *testing.T) {
	t.Parallel()
	b, err := marshal(internalBody)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != internalJSON {
		t.Fatalf("internalJSON = %s, want %s", internalJSON, b)
	}
}
