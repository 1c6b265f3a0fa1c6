//go:build !linux

package socketio

import "errors"

// newOSPoller: only Linux has a poller; elsewhere every connection has a
// reading goroutine.
func newOSPoller() (osPoller, error) { return nil, errors.ErrUnsupported }
