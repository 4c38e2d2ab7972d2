package sim

import (
	"container/heap"
	"time"

	"github.com/peerboot/peerboot/election"
)

// Clock is a virtual clock: AfterFunc queues an event and Run executes the
// events in time order, advancing Now to each. Nothing runs concurrently.
type Clock struct {
	now  int64 // Unix nanoseconds
	seq  uint64
	q    eventQueue
	free []*event
}

// delivery schedules msg for node to at Unix ns at.
func (c *Clock) delivery(at int64, to *Node, msg []byte) {
	var ev *event
	if n := len(c.free); n > 0 {
		ev = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		ev = new(event)
	}
	ev.at, ev.to, ev.msg = at, to, msg
	c.push(ev)
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start.UnixNano()} }

// Now returns the virtual time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.now) }

type event struct {
	at      int64
	seq     uint64
	index   int
	stopped bool
	fired   bool
	f       func()
	// deliveries avoid a closure per message
	to  *Node
	msg []byte
}

// Stop cancels the event.
func (ev *event) Stop() bool {
	if ev.fired || ev.stopped {
		return false
	}
	ev.stopped = true
	return true
}

// AfterFunc schedules f at Now()+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) election.Timer {
	return c.push(&event{at: c.now + int64(max(d, 0)), f: f})
}

func (c *Clock) push(ev *event) *event {
	c.seq++
	ev.seq = c.seq
	heap.Push(&c.q, ev)
	return ev
}

// Run executes every event due up to until, then sets Now to until. It
// returns the number of events run.
func (c *Clock) Run(until time.Time) int {
	end := until.UnixNano()
	n := 0
	for len(c.q) > 0 && c.q[0].at <= end {
		ev := heap.Pop(&c.q).(*event)
		if ev.stopped {
			continue
		}
		c.now = max(c.now, ev.at)
		ev.fired = true
		n++
		if ev.to != nil {
			to, msg := ev.to, ev.msg
			*ev = event{}
			c.free = append(c.free, ev) // deliveries are never handed out as Timers
			to.deliver(msg)
		} else {
			ev.f()
		}
	}
	c.now = max(c.now, end)
	return n
}

// RunFor runs the clock forward by d.
func (c *Clock) RunFor(d time.Duration) int { return c.Run(c.Now().Add(d)) }

// Pending is the number of queued events.
func (c *Clock) Pending() int { return len(c.q) }

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *eventQueue) Push(x any) {
	ev := x.(*event)
	ev.index = len(*q)
	*q = append(*q, ev)
}
func (q *eventQueue) Pop() any {
	old := *q
	n := len(old)
	ev := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return ev
}
