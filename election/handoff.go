package election

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// HandOff is called by the agent that answered a client once Central named
// the image. If this agent holds the image (or no live agent does) it
// returns Serve. Otherwise it sends the client and payload (Central's
// answer, opaque, at most wire.MaxPayload bytes) to the best holder and
// waits up to ElectionWait for that agent's claim: HandOff if it came,
// Serve if not (this agent answers after all).
func (e *Elector) HandOff(ctx context.Context, client ClientKey, image string, payload []byte) Decision {
	ch := make(chan Decision, 1)
	e.RequestHandOff(client, image, payload, func(d Decision) { ch <- d })
	select {
	case d := <-ch:
		return d
	case <-ctx.Done():
		return Decision{Action: Serve, Agent: e.self.id}
	}
}

// RequestHandOff is the non-blocking HandOff; done is called exactly once
// without locks held.
func (e *Elector) RequestHandOff(client ClientKey, image string, payload []byte, done func(Decision)) {
	e.mu.Lock()
	defer e.unlock()
	serve := Decision{Action: Serve, Agent: e.self.id}
	h := wire.ImageHash(image)
	if e.closed || !e.started || h == 0 || e.self.holds(h) || len(payload) > wire.MaxPayload {
		e.callLater(done, serve)
		return
	}
	now := e.clock.Now()
	target := best(e.members, []AgentID{e.self.id}, now.UnixNano(), client.MAC, h)
	if target == nil {
		e.stats.handoffNoHolder.Add(1)
		e.callLater(done, serve)
		return
	}
	st := e.clientState(client, true)
	if st == nil {
		e.stats.clientTableFull.Add(1)
		e.callLater(done, serve)
		return
	}
	if st.handoff != nil {
		st.handoff.waiters = append(st.handoff.waiters, done)
		return
	}
	hw := &handoffWait{waiters: []func(Decision){done}, tried: []AgentID{e.self.id},
		msg: wire.Handoff{Claim: wire.Claim{Client: toWireClient(client), Image: h, HoldMS: uint32(e.cfg.Reserve / time.Millisecond)}, Payload: slices.Clone(payload)}}
	st.handoff = hw
	e.sendHandoffLocked(st, hw, target.id)
}

// MaxHandoffTargets is how many holders a handoff tries before the agent
// that asked Central answers itself.
const MaxHandoffTargets = 2

// sendHandoffLocked hands the client to target (twice, unless
// SingleClaim) and waits ElectionWait for its claim; then it tries the
// next holder, or answers here.
func (e *Elector) sendHandoffLocked(st *clientState, hw *handoffWait, target AgentID) {
	hw.target = target
	hw.tried = append(hw.tried, target)
	hw.msg.Target = uint64(target)
	send := func() {
		var err error
		e.sendBuf, err = e.codec.AppendHandoff(e.sendBuf[:0], e.header(), &hw.msg)
		if err == nil {
			e.stats.handoffsSent.Add(1)
			e.sendLocked()
		}
	}
	send()
	if !e.cfg.SingleClaim {
		e.clock.AfterFunc(e.cfg.ElectionWait/2, func() {
			e.mu.Lock()
			defer e.unlock()
			if !e.closed && st.handoff == hw && hw.target == target {
				send()
			}
		})
	}
	hw.timer = e.clock.AfterFunc(e.cfg.ElectionWait, func() {
		e.mu.Lock()
		defer e.unlock()
		if e.closed || st.handoff != hw || hw.target != target {
			return
		}
		e.stats.handoffsFailed.Add(1)
		now := e.clock.Now()
		if len(hw.tried)-1 < MaxHandoffTargets {
			if next := best(e.members, hw.tried, now.UnixNano(), st.key.MAC, hw.msg.Image); next != nil {
				e.cfg.Logger.Warn("election: handoff not taken, trying the next holder", "client", net.HardwareAddr(st.key.MAC[:]).String(), "target", uint64(target), "next", uint64(next.id))
				e.sendHandoffLocked(st, hw, next.id)
				return
			}
		}
		// No holder took it: this agent answers after all.
		e.cfg.Logger.Warn("election: handoff not taken, answering here", "client", net.HardwareAddr(st.key.MAC[:]).String(), "target", uint64(target))
		e.claimLocked(st, hw.msg.Image, now)
		e.resolveHandoff(st, Decision{Action: Serve, Agent: e.self.id})
	})
}

func (e *Elector) onHandoff(from AgentID, ho *wire.Handoff, now time.Time) {
	if AgentID(ho.Target) != e.self.id {
		return // the target's claim tells the others
	}
	key := ClientKey{MAC: ho.Client.MAC, HasGUID: ho.Client.HasGUID, GUID: ho.Client.GUID}
	st := e.clientState(key, true)
	if st == nil {
		e.stats.clientTableFull.Add(1)
		return
	}
	if !e.self.eligible(now.UnixNano()) {
		return // the sender times out and answers itself
	}
	if st.owner == e.self.id && now.UnixNano() < st.holdUntil && st.handed != nil {
		return // the second copy of a handoff already taken
	}
	e.claimLocked(st, ho.Image, now)
	payload := slices.Clone(ho.Payload)
	if payload == nil {
		payload = []byte{}
	}
	st.handed = &handedHere{image: ho.Image, payload: payload, by: from, at: now.UnixNano()}
	e.stats.handoffsTaken.Add(1)
	d := Decision{Action: Serve, Agent: e.self.id, Rank: 0, Payload: payload, Image: ho.Image}
	if st.round != nil {
		// A request of this client is waiting here: its caller answers.
		st.round.timer.Stop()
		e.stats.served.Add(uint64(len(st.round.waiters)))
		e.resolveRound(st, d)
		return
	}
	if f := e.cfg.OnHandoff; f != nil {
		image := ho.Image
		e.later = append(e.later, pendingCall{f: func() { f(key, image, payload) }})
	}
}
