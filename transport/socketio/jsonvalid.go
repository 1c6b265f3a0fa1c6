package socketio

import (
	"encoding/json"

	"github.com/roomlog/roomlog/domain"
)

// validJSON reports whether p is one JSON value, exactly as json.Valid
// does. A logged event's payload is checked once per event in the fan-out
// and once per replayed event in a recovery, where json.Valid was three
// fifths of encoding a frame; domain.QuickCheckJSON settles the usual
// payload (the publish API checked it by the same rules) in one pass, and
// anything it does not vouch for goes to json.Valid.
func validJSON(p []byte) bool {
	return domain.QuickCheckJSON(p) || json.Valid(p)
}
