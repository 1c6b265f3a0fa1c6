package eventstore

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// genesisHash is the prev_hash of every room's first row.
var genesisHash = make([]byte, sha256.Size)

// rowHash computes a row's chain hash. The encoding is fixed forever, since
// changing it would make every stored chain fail verification:
//
//	sha256( prev_hash
//	      || be64(seq)
//	      || be32(len) event_id (16 raw bytes)
//	      || be32(len) room || be32(len) type || be32(len) producer
//	      || be64(created_at as Unix microseconds)
//	      || be32(len) payload (the exact stored bytes) )
//
// Length prefixes keep field boundaries unambiguous.
func rowHash(prev []byte, seq int64, eventID [16]byte, room, typ, producer string, at time.Time, payload []byte) []byte {
	h := sha256.New()
	var b [8]byte
	h.Write(prev)
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	h.Write(b[:])
	writeField := func(p []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	writeField(eventID[:])
	writeField([]byte(room))
	writeField([]byte(typ))
	writeField([]byte(producer))
	binary.BigEndian.PutUint64(b[:], uint64(at.UnixMicro()))
	h.Write(b[:])
	writeField(payload)
	return h.Sum(nil)
}
