//go:build !race

package socketio

// raceEnabled says the tests run under the race detector, where stacks
// need more room than in a normal build.
const raceEnabled = false
