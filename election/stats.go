package election

import (
	"net/netip"
	"sync/atomic"
)

// Stats are the Elector's counters (monotonic since New).
type Stats struct {
	Received, Accepted               uint64 // datagrams in; authentic, fresh, of this subnet
	DroppedMalformed, DroppedVersion uint64 // not an election message / other version
	DroppedAuth, DroppedSubnet       uint64 // wrong key or forged / another subnet
	DroppedStale, DroppedReplay      uint64 // timestamp outside MaxClockSkew / nonce seen
	DroppedTableFull                 uint64 // too many senders or members
	OwnEcho                          uint64 // our own broadcasts looped back
	RecvErrors, SendErrors           uint64
	Sent, HeartbeatsSent             uint64
	ClaimsSent, ClaimsReceived       uint64
	HandoffsSent, HandoffsReceived   uint64
	HandoffsTaken, HandoffsFailed    uint64 // handed to us / target never claimed
	HandoffNoHolder                  uint64 // no live agent holds the image
	Requests, Served, Deferred       uint64
	Failovers                        uint64 // answered after waiting out higher ranks
	BoundaryGuarded                  uint64 // requests ranked by the boundary guard (two rankings disagreed)
	ConflictsWon, ConflictsLost      uint64 // two claims for one client
	MembersJoined, MembersLeft       uint64
	MembersExpired, ClientTableFull  uint64
}

type counters struct {
	received, accepted               atomic.Uint64
	droppedMalformed, droppedVersion atomic.Uint64
	droppedAuth, droppedSubnet       atomic.Uint64
	droppedStale, droppedReplay      atomic.Uint64
	droppedTableFull, ownEcho        atomic.Uint64
	recvErrors, sendErrors           atomic.Uint64
	sent, heartbeatsSent             atomic.Uint64
	claimsSent, claimsReceived       atomic.Uint64
	handoffsSent, handoffsReceived   atomic.Uint64
	handoffsTaken, handoffsFailed    atomic.Uint64
	handoffNoHolder                  atomic.Uint64
	requests, served, deferred       atomic.Uint64
	failovers, boundaryGuarded       atomic.Uint64
	conflictsWon, conflictsLost      atomic.Uint64
	membersJoined, membersLeft       atomic.Uint64
	membersExpired, clientTableFull  atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (e *Elector) Stats() Stats {
	c := &e.stats
	return Stats{
		Received: c.received.Load(), Accepted: c.accepted.Load(),
		DroppedMalformed: c.droppedMalformed.Load(), DroppedVersion: c.droppedVersion.Load(),
		DroppedAuth: c.droppedAuth.Load(), DroppedSubnet: c.droppedSubnet.Load(),
		DroppedStale: c.droppedStale.Load(), DroppedReplay: c.droppedReplay.Load(),
		DroppedTableFull: c.droppedTableFull.Load(), OwnEcho: c.ownEcho.Load(),
		RecvErrors: c.recvErrors.Load(), SendErrors: c.sendErrors.Load(),
		Sent: c.sent.Load(), HeartbeatsSent: c.heartbeatsSent.Load(),
		ClaimsSent: c.claimsSent.Load(), ClaimsReceived: c.claimsReceived.Load(),
		HandoffsSent: c.handoffsSent.Load(), HandoffsReceived: c.handoffsReceived.Load(),
		HandoffsTaken: c.handoffsTaken.Load(), HandoffsFailed: c.handoffsFailed.Load(),
		HandoffNoHolder: c.handoffNoHolder.Load(),
		Requests:        c.requests.Load(), Served: c.served.Load(), Deferred: c.deferred.Load(),
		Failovers: c.failovers.Load(), BoundaryGuarded: c.boundaryGuarded.Load(),
		ConflictsWon: c.conflictsWon.Load(), ConflictsLost: c.conflictsLost.Load(),
		MembersJoined: c.membersJoined.Load(), MembersLeft: c.membersLeft.Load(),
		MembersExpired: c.membersExpired.Load(), ClientTableFull: c.clientTableFull.Load(),
	}
}

// Dropped is the total of every drop counter.
func (s Stats) Dropped() uint64 {
	return s.DroppedMalformed + s.DroppedVersion + s.DroppedAuth + s.DroppedSubnet + s.DroppedStale + s.DroppedReplay + s.DroppedTableFull
}

func netipFrom16(b [16]byte) netip.Addr {
	if b == ([16]byte{}) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(b).Unmap()
}
