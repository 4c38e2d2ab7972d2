package pxe

import (
	"sync"
	"sync/atomic"

	"github.com/peerboot/peerboot/codec/dhcp"
)

// scratch is the per-call working memory: a decoded packet (several KiB)
// and the client description handed to the Decider.
type scratch struct {
	busy   atomic.Bool
	pkt    dhcp.Packet
	client Client
	b      dhcp.Builder
}

// scratchPool hands each concurrent Handle call its own preallocated
// scratch. Taking one is a compare-and-swap on the first free slot (the
// engine's reader serving inline always finds slot 0 free); only when
// every slot is taken (more handlers blocked in a Decider than slots) does
// a caller wait, on a condition variable.
type scratchPool struct {
	slots   []scratch
	waiters atomic.Int32
	mu      sync.Mutex
	freed   sync.Cond
}

func (p *scratchPool) init(n int) {
	p.slots = make([]scratch, n)
	p.freed.L = &p.mu
}

func (p *scratchPool) tryGet() *scratch {
	for i := range p.slots {
		sc := &p.slots[i]
		if !sc.busy.Load() && sc.busy.CompareAndSwap(false, true) {
			return sc
		}
	}
	return nil
}

func (p *scratchPool) get() *scratch {
	if sc := p.tryGet(); sc != nil {
		return sc
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		// waiters is raised before this scan, so a put that frees a slot
		// after the scan sees it and signals.
		if sc := p.tryGet(); sc != nil {
			return sc
		}
		p.freed.Wait()
	}
}

func (p *scratchPool) put(sc *scratch) {
	sc.busy.Store(false)
	if p.waiters.Load() > 0 {
		p.mu.Lock()
		p.freed.Signal()
		p.mu.Unlock()
	}
}
