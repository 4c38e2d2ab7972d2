package pxe

import (
	"context"
	"sync"
	"time"

	"github.com/peerboot/peerboot/engine"
)

type stickyKey struct {
	mac   [6]byte
	class Class
	ipxe  bool
}

type stickySlot struct {
	key     stickyKey
	used    bool
	expires int64
	d       Decision
}

const (
	stickyShards    = 16
	stickyShardSize = 256
	stickyProbe     = 4
)

type stickyShard struct {
	mu    sync.Mutex
	slots [stickyShardSize]stickySlot
}

// Sticky wraps a Decider so that retries of the same client (same MAC,
// boot class and iPXE-ness) get the same answer for TTL, whatever the
// inner Decider (Central, an election) would say by then. The table has a
// fixed size; a full probe window evicts the entry closest to expiry.
type Sticky struct {
	Inner  Decider
	TTL    time.Duration
	now    func() int64
	shards [stickyShards]stickyShard
}

// NewSticky returns d wrapped so retries are answered alike for ttl.
func NewSticky(d Decider, ttl time.Duration) *Sticky {
	return &Sticky{Inner: d, TTL: ttl, now: engine.Now}
}

// Decide implements Decider.
func (s *Sticky) Decide(ctx context.Context, c *Client) (Decision, error) {
	k := stickyKey{mac: c.MAC, class: c.Class, ipxe: c.IPXE}
	h := macHash(c.MAC) ^ uint32(c.Class)<<8
	if c.IPXE {
		h ^= 0x9e3779b9
	}
	sh := &s.shards[h%stickyShards]
	base := int(h/stickyShards) % stickyShardSize
	now := c.Received // the arrival time the Server stamped, if any
	if now == 0 {
		now = s.now()
	}
	sh.mu.Lock()
	for i := 0; i < stickyProbe; i++ {
		sl := &sh.slots[(base+i)%stickyShardSize]
		if sl.used && sl.key == k && sl.expires > now {
			d := sl.d
			sh.mu.Unlock()
			return d, nil
		}
	}
	sh.mu.Unlock()
	d, err := s.Inner.Decide(ctx, c)
	if err != nil {
		return d, err // errors are not remembered: the next retry asks again
	}
	sh.mu.Lock()
	victim := base
	for i := 0; i < stickyProbe; i++ {
		idx := (base + i) % stickyShardSize
		sl := &sh.slots[idx]
		if (sl.used && sl.key == k) || !sl.used || sl.expires <= now {
			victim = idx
			break
		}
		if sl.expires < sh.slots[victim].expires {
			victim = idx
		}
	}
	sh.slots[victim] = stickySlot{key: k, used: true, expires: now + int64(s.TTL), d: d}
	sh.mu.Unlock()
	return d, nil
}
