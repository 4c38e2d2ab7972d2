package election

import (
	"context"
	"net"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// Decide runs the election for one client request and blocks until this
// agent knows whether it answers: at once if it ranks first or the client
// is already claimed, after rank x ElectionWait otherwise. needImage is the
// boot image if already known ("" if not); holders of it rank first. A
// cancelled ctx returns Defer.
func (e *Elector) Decide(ctx context.Context, client ClientKey, needImage string) Decision {
	ch := make(chan Decision, 1)
	e.Request(client, needImage, func(d Decision) { ch <- d })
	select {
	case d := <-ch:
		return d
	case <-ctx.Done():
		return Decision{Action: Defer, Rank: -1}
	}
}

// Request is the non-blocking Decide: done is called exactly once, without
// locks held, possibly before Request returns.
func (e *Elector) Request(client ClientKey, needImage string, done func(Decision)) {
	e.mu.Lock()
	defer e.unlock()
	e.stats.requests.Add(1)
	if e.closed || !e.started {
		e.callLater(done, Decision{Action: Defer, Rank: -1})
		return
	}
	now := e.clock.Now()
	image := wire.ImageHash(needImage)
	st := e.clientState(client, true)
	tracked := st != nil
	if !tracked {
		e.stats.clientTableFull.Add(1)
		st = &clientState{key: client} // decide without remembering
	}
	if st.round != nil {
		st.round.waiters = append(st.round.waiters, done)
		return
	}
	if st.handoff != nil {
		st.handoff.waiters = append(st.handoff.waiters, done)
		return
	}
	if tracked {
		n := now.UnixNano()
		if st.owner != 0 && st.owner != e.self.id && n <= st.holdUntil && st.lastRequest != 0 && n-st.lastRequest >= int64(e.cfg.ElectionWait) {
			st.retriesPinned++
			if st.retriesPinned >= 2 {
				st.distrusted, st.distrustUntil = st.owner, st.holdUntil
				st.owner, st.holdUntil, st.retriesPinned = 0, 0, 0
			}
		}
		st.lastRequest = n
	}
	pinned := e.pinned(st, now)
	if pinned == e.self.id {
		if st.handed != nil && now.UnixNano()-st.handed.at < int64(e.cfg.ElectionWait) {
			// The request that the handoff (OnHandoff) already answered,
			// heard late: answering again would duplicate.
			e.stats.deferred.Add(1)
			e.callLater(done, Decision{Action: Defer, Agent: e.self.id, Rank: 0})
			return
		}
		if now.UnixNano()-st.lastClaimSent >= int64(e.cfg.ElectionWait) {
			e.claimLocked(st, image, now)
		}
		e.stats.served.Add(1)
		payload, img := st.payloadImage()
		e.callLater(done, Decision{Action: Serve, Agent: e.self.id, Rank: 0, Payload: payload, Image: img})
		return
	}
	if pinned != 0 && now.UnixNano()-st.lastClaimRecv <= int64(e.cfg.ElectionWait) {
		// The owner's claim for this very request already arrived.
		e.stats.deferred.Add(1)
		e.callLater(done, Decision{Action: Defer, Agent: pinned, Rank: e.positionLocked(st, pinned, now, image)})
		return
	}
	pos, wait := e.positionWaitLocked(st, pinned, now, image)
	switch {
	case pos < 0:
		e.stats.deferred.Add(1)
		e.callLater(done, Decision{Action: Defer, Agent: pinned, Rank: -1})
	case pos > e.cfg.FailoverDepth || (pos > 0 && !tracked):
		// Too deep to answer by timeout, or no room to hear the claim
		// that would stop the timeout.
		e.stats.deferred.Add(1)
		e.callLater(done, Decision{Action: Defer, Agent: pinned, Rank: pos})
	case wait == 0:
		e.claimLocked(st, image, now)
		e.stats.served.Add(1)
		e.callLater(done, Decision{Action: Serve, Agent: e.self.id, Rank: 0})
	default:
		r := &round{rank: pos, waiters: []func(Decision){done}}
		st.round = r
		r.timer = e.clock.AfterFunc(wait, func() { e.roundExpired(st, r, image) })
	}
}

func (e *Elector) positionLocked(st *clientState, pinned AgentID, now time.Time, image uint64) int {
	pos, _ := e.positionWaitLocked(st, pinned, now, image)
	return pos
}

// positionWaitLocked is this agent's rank for the client and how long it
// waits before answering if no claim arrives (0: answer at once). Near a
// load-epoch boundary the guard may rank it by the other side of the
// boundary, or make the new first wait (see boundaryView).
func (e *Elector) positionWaitLocked(st *clientState, pinned AgentID, now time.Time, image uint64) (int, time.Duration) {
	skip := AgentID(0)
	if st.distrusts(st.distrusted, now.UnixNano()) {
		skip = st.distrusted
	}
	at := now.UnixNano()
	if pinned == 0 && !e.cfg.NoBoundaryGuard {
		var newFirst *member
		at, newFirst = boundaryView(e.members, skip, now.UnixNano(), int64(e.cfg.LoadEpoch), int64(e.cfg.BoundaryGuard), st.key.MAC, image)
		if newFirst != nil {
			e.stats.boundaryGuarded.Add(1)
			if newFirst == e.self {
				return 1, e.cfg.ElectionWait * guardWaitQuarters / 4
			}
		}
	}
	pos := positionAt(e.members, e.self, pinned, skip, now.UnixNano(), at, st.key.MAC, image, e.cfg.FailoverDepth)
	return pos, time.Duration(max(pos, 0)) * e.cfg.ElectionWait
}

// pinned is the agent whose claim on the client still holds, or 0.
func (e *Elector) pinned(st *clientState, now time.Time) AgentID {
	if st.owner == 0 || now.UnixNano() > st.holdUntil || st.distrusts(st.owner, now.UnixNano()) {
		return 0
	}
	m := e.byID[st.owner]
	if m == nil || !m.eligible(now.UnixNano()) {
		return 0
	}
	return st.owner
}

// roundExpired: nobody ranked above this agent claimed the client in time.
func (e *Elector) roundExpired(st *clientState, r *round, image uint64) {
	e.mu.Lock()
	defer e.unlock()
	if st.round != r || e.closed {
		return
	}
	now := e.clock.Now()
	e.stats.failovers.Add(1)
	e.cfg.Logger.Debug("election: answering after higher ranks stayed silent", "client", net.HardwareAddr(st.key.MAC[:]).String(), "rank", r.rank)
	e.claimLocked(st, image, now)
	e.stats.served.Add(uint64(len(r.waiters)))
	e.resolveRound(st, Decision{Action: Serve, Agent: e.self.id, Rank: r.rank})
}

func (e *Elector) resolveRound(st *clientState, d Decision) {
	r := st.round
	st.round = nil
	for _, w := range r.waiters {
		e.callLater(w, d)
	}
}

func (e *Elector) resolveHandoff(st *clientState, d Decision) {
	h := st.handoff
	st.handoff = nil
	for _, w := range h.waiters {
		e.callLater(w, d)
	}
}

// clientState finds (or, if create and there is room, makes) the state of
// a client.
func (e *Elector) clientState(c ClientKey, create bool) *clientState {
	st := e.clients[c.MAC]
	if st != nil {
		if c.HasGUID {
			st.key = c
		}
		return st
	}
	if !create || len(e.clients) >= e.cfg.MaxClients {
		return nil
	}
	st = &clientState{key: c}
	e.clients[c.MAC] = st
	return st
}

// claimLocked makes this agent the client's owner and broadcasts a claim
// (twice, unless SingleClaim: the copy covers the loss of the first).
func (e *Elector) claimLocked(st *clientState, image uint64, now time.Time) {
	e.setOwner(st, e.self.id, image, now, now.Add(e.cfg.Reserve))
	st.lastClaimSent = now.UnixNano()
	e.sendClaimLocked(st, image)
	if !e.cfg.SingleClaim {
		e.clock.AfterFunc(e.cfg.ElectionWait/2, func() {
			e.mu.Lock()
			defer e.unlock()
			if !e.closed && st.owner == e.self.id {
				e.sendClaimLocked(st, image)
			}
		})
	}
}

func (e *Elector) header() wire.Header {
	e.nonce++
	return wire.Header{Subnet: e.cfg.Subnet, Sender: uint64(e.self.id), Time: e.clock.Now().UnixMilli(), Nonce: e.nonce}
}

func toWireClient(c ClientKey) wire.Client {
	return wire.Client{MAC: c.MAC, HasGUID: c.HasGUID, GUID: c.GUID}
}

func (e *Elector) sendClaimLocked(st *clientState, image uint64) {
	cl := wire.Claim{Client: toWireClient(st.key), Image: image, HoldMS: uint32(e.cfg.Reserve / time.Millisecond)}
	e.sendBuf = e.codec.AppendClaim(e.sendBuf[:0], e.header(), &cl)
	e.stats.claimsSent.Add(1)
	e.sendLocked()
}

func (e *Elector) sendLocked() {
	e.stats.sent.Add(1)
	if err := e.tr.Send(e.sendBuf); err != nil {
		e.stats.sendErrors.Add(1)
		e.cfg.Logger.Warn("election: send", "err", err)
	}
}

// Claim makes this agent the client's owner at once and broadcasts the
// claim, whatever the ranking says: for an answer given outside Decide
// (an operator's choice, a unicast request). Other agents defer to it for
// ReserveSecs while this agent stays live.
func (e *Elector) Claim(client ClientKey, needImage string) {
	e.mu.Lock()
	defer e.unlock()
	if e.closed || !e.started {
		return
	}
	st := e.clientState(client, true)
	if st == nil {
		e.stats.clientTableFull.Add(1)
		return
	}
	if st.round != nil {
		st.round.timer.Stop()
		e.stats.served.Add(uint64(len(st.round.waiters)))
		defer e.resolveRound(st, Decision{Action: Serve, Agent: e.self.id, Rank: st.round.rank})
	}
	e.claimLocked(st, wire.ImageHash(needImage), e.clock.Now())
}
