package udpbatch

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"
)

// Slots counts the transfers of a process that wait in a blocking Socket,
// each holding an OS thread, so that at most a chosen number do; the others
// use Go's network poller.
type Slots struct{ n atomic.Int64 }

// TryTake takes a slot if fewer than limit are taken. A true result must be
// matched by one Release.
func (s *Slots) TryTake(limit int) bool {
	if s.n.Add(1) <= int64(limit) {
		return true
	}
	s.n.Add(-1)
	return false
}

// Release returns a slot TryTake took.
func (s *Slots) Release() { s.n.Add(-1) }

// Taken is the number of slots taken.
func (s *Slots) Taken() int { return int(s.n.Load()) }

// MaxBlockingWait bounds one blocking read of WaitUntil, so a canceled
// context is noticed within it.
const MaxBlockingWait = 100 * time.Millisecond

// WaitUntil calls read with timeouts of at most MaxBlockingWait until it
// returns anything but os.ErrDeadlineExceeded, deadline passes (then it
// returns os.ErrDeadlineExceeded) or ctx is done (then ctx.Err()). read is
// a blocking read on a Socket, whose timeout (and any signal) ends it with
// os.ErrDeadlineExceeded.
func WaitUntil(ctx context.Context, deadline time.Time, read func(timeout time.Duration) error) error {
	for {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		err := read(min(d, MaxBlockingWait))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
