package election

import (
	"slices"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// heartbeatLocked announces this agent and schedules the next heartbeat.
func (e *Elector) heartbeatLocked() {
	if e.closed {
		return
	}
	if err := e.sendHeartbeatLocked(0); err != nil {
		e.cfg.Logger.Warn("election: heartbeat", "err", err)
	}
	e.expireLocked(e.clock.Now())
	// +-10% jitter keeps agents from announcing in lockstep.
	iv := e.cfg.HeartbeatInterval
	d := iv - iv/10 + time.Duration(e.rng.Int64N(int64(iv/5)+1))
	e.hbTimer = e.clock.AfterFunc(d, func() {
		e.mu.Lock()
		defer e.unlock()
		e.heartbeatLocked()
	})
}

func (e *Elector) sendHeartbeatLocked(flags uint8) error {
	now := e.clock.Now()
	epochMS := e.cfg.LoadEpoch.Milliseconds()
	if ep := now.UnixMilli() / epochMS; ep != e.annEpoch {
		// First heartbeat of a new epoch: what was announced as next is
		// in force now, and the current settings become next. After a
		// silence (or at start) announce weight 0 for a whole epoch first,
		// so every peer knows this agent before it may answer.
		if ep == e.annEpoch+1 {
			e.annNow = e.annNext
			e.annNext = wire.Load{Weight: e.pendWeight, Transfers: e.pendTransfers, BytesPerSec: e.pendBytesPerSec}
		} else {
			e.annNow, e.annNext = wire.Load{}, wire.Load{}
			e.bal = balancer{}
		}
		e.annEpoch = ep
		e.self.setLoads(newLoadState(e.annNow), e.self.next, (ep+1)*epochMS*int64(time.Millisecond), epochMS*int64(time.Millisecond))
		if !e.cfg.NoBalance {
			// Decided with the balances in force from this boundary on.
			e.annNext.Balance = e.bal.next(e.members, e.self, now.UnixNano())
		}
	}
	s := e.self
	s.setLoads(newLoadState(e.annNow), newLoadState(e.annNext), (e.annEpoch+1)*epochMS*int64(time.Millisecond), epochMS*int64(time.Millisecond))
	s.images = e.pendImages
	s.heard(now)
	hb := wire.Heartbeat{Flags: flags, IntervalMS: uint32(e.cfg.HeartbeatInterval / time.Millisecond), EpochMS: uint32(epochMS),
		Now: e.annNow, Next: e.annNext, Images: s.images}
	if e.cfg.Addr.IsValid() {
		hb.Addr = e.cfg.Addr.As16()
	}
	var err error
	e.sendBuf, err = e.codec.AppendHeartbeat(e.sendBuf[:0], e.header(), &hb)
	if err != nil {
		return err
	}
	e.stats.heartbeatsSent.Add(1)
	e.sendLocked()
	return nil
}

// expireLocked forgets dead members, idle replay state and settled clients.
func (e *Elector) expireLocked(now time.Time) {
	e.members = slices.DeleteFunc(e.members, func(m *member) bool {
		if m == e.self || m.live(now.UnixNano()) {
			return false
		}
		delete(e.byID, m.id)
		e.stats.membersExpired.Add(1)
		return true
	})
	for id, r := range e.replay {
		if now.Sub(r.lastSeen) > 2*e.cfg.MaxClockSkew {
			delete(e.replay, id)
		}
	}
	if now.Sub(e.lastSweep) < max(e.cfg.Reserve/4, e.cfg.HeartbeatInterval) {
		return
	}
	e.lastSweep = now
	for mac, st := range e.clients {
		if st.round == nil && st.handoff == nil && now.UnixNano() > st.holdUntil && now.UnixNano()-st.lastClaimRecv > int64(e.cfg.ElectionWait) {
			delete(e.clients, mac)
		}
	}
}

func (e *Elector) onHeartbeat(from AgentID, hb *wire.Heartbeat, sentMS int64, now time.Time) {
	m := e.byID[from]
	if hb.Flags&wire.FlagLeaving != 0 {
		if m != nil {
			m.lastSeen, m.liveUntil = time.Time{}, 0
			e.members = slices.DeleteFunc(e.members, func(x *member) bool { return x == m })
			delete(e.byID, from)
			e.stats.membersLeft.Add(1)
			e.cfg.Logger.Debug("election: member left", "agent", uint64(from))
		}
		return
	}
	if m == nil {
		if len(e.members) >= e.cfg.MaxMembers {
			e.stats.droppedTableFull.Add(1)
			return
		}
		m = &member{id: from, seed: mix64(uint64(from))}
		e.members = append(e.members, m)
		e.byID[from] = m
		e.stats.membersJoined.Add(1)
		e.cfg.Logger.Debug("election: member joined", "agent", uint64(from))
	}
	epochMS := min(int64(hb.EpochMS), int64(time.Hour/time.Millisecond))
	m.setLoads(newLoadState(hb.Now), newLoadState(hb.Next), (sentMS/epochMS+1)*epochMS*int64(time.Millisecond), epochMS*int64(time.Millisecond))
	iv := time.Duration(hb.IntervalMS) * time.Millisecond
	m.interval = min(max(iv, 50*time.Millisecond), time.Minute)
	m.heard(now)
	m.addr = netipFrom16(hb.Addr)
	m.images = append(m.images[:0], hb.Images...)
	slices.Sort(m.images)
}
