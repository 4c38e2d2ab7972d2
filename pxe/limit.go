package pxe

import (
	"sync"
	"sync/atomic"
	"time"
)

// gcra is the generic cell rate algorithm: one int64 per bucket (the
// theoretical arrival time), the same result as a token bucket.
type gcra struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // interval * (burst - 1)
}

func newGCRA(perSecond float64, burst int) gcra {
	if perSecond <= 0 {
		return gcra{}
	}
	if burst < 1 {
		burst = 1
	}
	iv := int64(float64(time.Second) / perSecond)
	if iv < 1 {
		iv = 1
	}
	return gcra{interval: iv, tolerance: iv * int64(burst-1)}
}

func (g gcra) unlimited() bool { return g.interval == 0 }

// allow updates *tat for an event at now and reports whether it conforms.
func (g gcra) allow(tat *int64, now int64) bool {
	t := *tat
	if t < now {
		t = now
	}
	if t-g.tolerance > now {
		return false
	}
	*tat = t + g.interval
	return true
}

// globalLimiter is a lock-free GCRA shared by every worker.
type globalLimiter struct {
	g   gcra
	tat atomic.Int64
}

func (l *globalLimiter) allow(now int64) bool {
	if l.g.unlimited() {
		return true
	}
	for {
		old := l.tat.Load()
		t := old
		if !l.g.allow(&t, now) {
			return false
		}
		if l.tat.CompareAndSwap(old, t) {
			return true
		}
	}
}

const (
	macShards    = 16
	macShardSize = 256 // slots per shard; 4096 clients tracked at once
	macProbe     = 4
)

type macSlot struct {
	mac  [6]byte
	used bool
	tat  int64
}

type macShard struct {
	mu    sync.Mutex
	slots [macShardSize]macSlot
}

// macLimiter is a fixed-size table of per-MAC GCRA buckets: no allocation
// and bounded memory however many MACs a hostile link shows. When a probe
// window is full the least recently active entry is replaced.
type macLimiter struct {
	g      gcra
	shards [macShards]macShard
}

func macHash(m [6]byte) uint32 {
	h := uint32(2166136261)
	for _, b := range m {
		h ^= uint32(b)
		h *= 16777619
	}
	return h
}

func (l *macLimiter) allow(mac [6]byte, now int64) bool {
	if l.g.unlimited() {
		return true
	}
	h := macHash(mac)
	sh := &l.shards[h%macShards]
	base := int(h/macShards) % macShardSize
	sh.mu.Lock()
	defer sh.mu.Unlock()
	victim := -1
	for i := 0; i < macProbe; i++ {
		idx := (base + i) % macShardSize
		s := &sh.slots[idx]
		if s.used && s.mac == mac {
			return l.g.allow(&s.tat, now)
		}
		switch {
		case victim < 0:
			victim = idx
		case !sh.slots[victim].used:
			// keep the first free slot
		case !s.used || s.tat < sh.slots[victim].tat:
			victim = idx
		}
	}
	s := &sh.slots[victim]
	*s = macSlot{mac: mac, used: true}
	return l.g.allow(&s.tat, now)
}
