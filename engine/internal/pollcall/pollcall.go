// Package pollcall runs one non-blocking socket system call from inside a
// syscall.RawConn Read or Write callback, the way the engine's sockets
// batch their reads and writes without allocating: EINTR is retried,
// EAGAIN tells the callback to return false (the runtime poller then parks
// the goroutine until the socket is ready), anything else is the call's
// error.
//
// pollcall must never import anything but the standard library and
// golang.org/x/sys/unix.
package pollcall

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Do calls trap with a1..a4 (and zeros for the rest), retrying EINTR. wait
// is true when the socket had nothing to give or no room (EAGAIN); errno is
// any other failure; otherwise r is the call's result.
func Do(trap, a1, a2, a3, a4 uintptr) (r uintptr, wait bool, errno syscall.Errno) {
	for {
		r, _, e := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0)
		switch e {
		case 0:
			return r, false, 0
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, true, 0
		default:
			return 0, false, e
		}
	}
}
