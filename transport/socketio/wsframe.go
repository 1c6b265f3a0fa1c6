package socketio

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

// wsFrame is one client frame (RFC 6455, 5.2) as wsFrameParser returns it:
// its payload is unmasked in place, in the buffer it was parsed from.
type wsFrame struct {
	op      byte
	fin     bool
	payload []byte
}

// WebSocket opcodes a client may send besides text, binary and pong.
const (
	opContinuation = 0x0
	opClose        = 0x8
	opPing         = 0x9
)

// WebSocket close codes (RFC 6455, 7.4.1) the poll reader sends.
const (
	closeProtocolError = 1002
	closeMessageTooBig = 1009
)

// wsProtocolError is a frame that breaks RFC 6455; the connection ends
// with a close frame carrying code.
type wsProtocolError struct {
	code int
	msg  string
}

func (e *wsProtocolError) Error() string { return "websocket: " + e.msg }

// errWSReadLimit is a message over the read limit, as gorilla words it.
var errWSReadLimit = &wsProtocolError{code: closeMessageTooBig, msg: "read limit exceeded"}

// errWSIncomplete is next's answer while b holds no whole frame yet.
var errWSIncomplete = errors.New("websocket: incomplete frame")

// wsFrameParser checks and splits the frames of one client connection,
// with gorilla's rules for a server: every frame masked, no reserved bits
// (no extension is negotiated on the connections it reads), known
// opcodes, control frames whole and at most 125 bytes, a close frame's
// code one a peer may send and its reason UTF-8, continuation frames only
// inside a fragmented message, and a message (all its fragments) at most
// limit bytes when limit > 0.
type wsFrameParser struct {
	limit int
	// inMessage says a fragmented message has begun; size is its length
	// so far.
	inMessage bool
	size      int
}

// next parses the frame at the start of b. It returns the frame and the
// bytes it took, errWSIncomplete if b holds only part of it, or a
// *wsProtocolError. A data frame over the read limit is refused from its
// header, before its payload arrives.
func (p *wsFrameParser) next(b []byte) (wsFrame, int, error) {
	if len(b) < 2 {
		return wsFrame{}, 0, errWSIncomplete
	}
	b0, b1 := b[0], b[1]
	f := wsFrame{op: b0 & 0x0f, fin: b0&0x80 != 0}
	if b0&0x70 != 0 {
		return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "unexpected reserved bits"}
	}
	if b1&0x80 == 0 {
		return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "incorrect mask flag"}
	}
	hdr, n := 2, uint64(b1&0x7f)
	switch n {
	case 126:
		hdr = 4
		if len(b) < hdr {
			return wsFrame{}, 0, errWSIncomplete
		}
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		hdr = 10
		if len(b) < hdr {
			return wsFrame{}, 0, errWSIncomplete
		}
		n = binary.BigEndian.Uint64(b[2:10])
		if n>>63 != 0 {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "invalid payload length"}
		}
	}
	switch f.op {
	case opClose, opPing, opPong:
		if !f.fin {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "control frame not final"}
		}
		if n > 125 {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "control frame length > 125"}
		}
	case opText, opBinary:
		if p.inMessage {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "data before FIN"}
		}
		if p.limit > 0 && n > uint64(p.limit) {
			return wsFrame{}, 0, errWSReadLimit
		}
	case opContinuation:
		if !p.inMessage {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "continuation after FIN"}
		}
		if p.limit > 0 && n > uint64(p.limit-p.size) {
			return wsFrame{}, 0, errWSReadLimit
		}
	default:
		return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "unknown opcode " + strconv.Itoa(int(f.op))}
	}
	total := uint64(hdr) + 4 + n
	if uint64(len(b)) < total {
		return wsFrame{}, 0, errWSIncomplete
	}
	key := b[hdr : hdr+4]
	f.payload = b[hdr+4 : total]
	for i := range f.payload {
		f.payload[i] ^= key[i&3]
	}
	if f.op == opClose && len(f.payload) >= 2 {
		if code := int(binary.BigEndian.Uint16(f.payload)); !validReceivedCloseCode(code) {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "bad close code " + strconv.Itoa(code)}
		}
		if !utf8.Valid(f.payload[2:]) {
			return wsFrame{}, 0, &wsProtocolError{closeProtocolError, "invalid utf8 payload in close frame"}
		}
	}
	switch f.op {
	case opText, opBinary:
		p.inMessage, p.size = !f.fin, len(f.payload)
	case opContinuation:
		p.inMessage = !f.fin
		p.size += len(f.payload)
	}
	if !p.inMessage {
		p.size = 0
	}
	return f, int(total), nil
}

// validReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455, 7.4): gorilla's list, which leaves out the codes that
// only describe a connection (1005 no status, 1006 abnormal closure, 1015
// TLS handshake) and the unassigned ones, plus the ranges for libraries
// and applications (3000–4999).
func validReceivedCloseCode(code int) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013:
		return true
	}
	return code >= 3000 && code <= 4999
}
