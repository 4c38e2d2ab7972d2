package election

import (
	"errors"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// Receive handles one datagram from the subnet. Anything that is not an
// authentic, fresh message of this subnet is dropped and counted.
func (e *Elector) Receive(msg []byte) {
	e.mu.Lock()
	defer e.unlock()
	e.stats.received.Add(1)
	if e.closed {
		return
	}
	m := &e.dec
	if err := e.codec.Decode(msg, m); err != nil {
		switch {
		case errors.Is(err, wire.ErrVersion):
			e.stats.droppedVersion.Add(1)
		case errors.Is(err, wire.ErrAuth):
			e.stats.droppedAuth.Add(1)
		default:
			e.stats.droppedMalformed.Add(1)
		}
		return
	}
	if m.Subnet != e.cfg.Subnet {
		e.stats.droppedSubnet.Add(1)
		return
	}
	if AgentID(m.Sender) == e.self.id {
		e.stats.ownEcho.Add(1)
		return
	}
	now := e.clock.Now()
	if skew := now.Sub(time.UnixMilli(m.Time)); skew > e.cfg.MaxClockSkew || skew < -e.cfg.MaxClockSkew {
		e.stats.droppedStale.Add(1)
		return
	}
	rs := e.replay[m.Sender]
	if rs == nil {
		if len(e.replay) >= 2*e.cfg.MaxMembers {
			e.stats.droppedTableFull.Add(1)
			return
		}
		rs = &replayState{}
		e.replay[m.Sender] = rs
	}
	if !rs.accept(m.Nonce) {
		e.stats.droppedReplay.Add(1)
		return
	}
	rs.lastSeen = now
	e.stats.accepted.Add(1)
	switch m.Type {
	case wire.TypeHeartbeat:
		e.onHeartbeat(AgentID(m.Sender), &m.Heartbeat, m.Time, now)
	case wire.TypeClaim:
		e.stats.claimsReceived.Add(1)
		e.onClaim(AgentID(m.Sender), &m.Claim, now)
	case wire.TypeHandoff:
		e.stats.handoffsReceived.Add(1)
		e.onHandoff(AgentID(m.Sender), &m.Handoff, now)
	}
}

func (e *Elector) onClaim(from AgentID, cl *wire.Claim, now time.Time) {
	key := ClientKey{MAC: cl.Client.MAC, HasGUID: cl.Client.HasGUID, GUID: cl.Client.GUID}
	st := e.clientState(key, true)
	if st == nil {
		e.stats.clientTableFull.Add(1)
		return
	}
	if st.distrusts(from, now.UnixNano()) {
		return // it claimed this client before and did not answer it
	}
	hold := min(time.Duration(cl.HoldMS)*time.Millisecond, 10*time.Minute)
	image := cl.Image
	st.lastClaimRecv = now.UnixNano()
	switch {
	case st.handoff != nil && st.handoff.target == from:
		// The holder took the client this agent handed over.
		st.handoff.timer.Stop()
		e.setOwner(st, from, image, now, now.Add(hold))
		e.resolveHandoff(st, Decision{Action: HandOff, Agent: from})
		return
	case st.owner == e.self.id && now.UnixNano() < st.holdUntil && from != e.self.id:
		// Both claimed (views differed, or a claim was lost twice): the
		// better ranked keeps the client on both sides. A claim of the
		// agent that handed the client here is older news.
		if (st.handed != nil && from == st.handed.by) || e.outranks(e.self.id, from, st.key.MAC, cl.Image, now) {
			e.stats.conflictsWon.Add(1)
			return
		}
		e.stats.conflictsLost.Add(1)
	}
	e.setOwner(st, from, image, now, now.Add(hold))
	if st.round != nil {
		st.round.timer.Stop()
		e.stats.deferred.Add(uint64(len(st.round.waiters)))
		e.resolveRound(st, Decision{Action: Defer, Agent: from, Rank: st.round.rank})
	}
}

// setOwner records a claim on the client (needing image) by owner, this
// agent or another, at now, holding until until. A claim that makes a new
// owner (another agent, or any after the hold ran out) is a client this
// agent was due its share of (see balancer).
func (e *Elector) setOwner(st *clientState, owner AgentID, image uint64, now, until time.Time) {
	if owner != st.owner {
		st.handed = nil
	}
	if owner != st.owner || now.UnixNano() > st.holdUntil {
		e.bal.game(dueShare(e.members, e.self, now.UnixNano(), image), owner == e.self.id)
	}
	st.owner, st.holdUntil = owner, until.UnixNano()
}

// outranks reports whether a ranks above b for the client (ignoring pins).
func (e *Elector) outranks(a, b AgentID, mac [6]byte, image uint64, now time.Time) bool {
	ma, mb := e.byID[a], e.byID[b]
	if mb == nil || !mb.eligible(now.UnixNano()) {
		return true
	}
	if ma == nil || !ma.eligible(now.UnixNano()) {
		return false
	}
	k := macKey(mac)
	return ma.key(k, image, now.UnixNano()).better(mb.key(k, image, now.UnixNano()))
}
