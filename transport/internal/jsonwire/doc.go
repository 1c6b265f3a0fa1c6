// Package jsonwire appends JSON text by hand for the transports' hot
// paths: the Socket.IO frames of transport/socketio and the catch-up pages
// of transport/http. Both write their answers into one buffer rather than
// through encoding/json, and both promise the very bytes encoding/json
// would have written; the helpers they share live here so that the two
// cannot drift apart.
//
// Strings that need no escaping are copied; anything else is left to
// encoding/json, so the output is always encoding/json's.
package jsonwire
