package election

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// Transport broadcasts election messages to the subnet. Send must not call
// back into the Elector synchronously and must not keep msg after it
// returns. A Transport that also implements Receiver is read by Start; one
// that does not (the simulator) delivers by calling Elector.Receive.
type Transport interface {
	Send(msg []byte) error
}

// Receiver is a Transport that can be read: Recv blocks for one datagram.
// It must return an error wrapping net.ErrClosed once closed.
type Receiver interface {
	Recv(buf []byte) (int, error)
}

// Action is what an agent does about a client.
type Action uint8

// Actions.
const (
	// Defer: another agent answers this client.
	Defer Action = iota
	// Serve: this agent answers the client.
	Serve
	// HandOff: this agent handed the client to Decision.Agent, which holds
	// the image; it must not answer.
	HandOff
)

func (a Action) String() string {
	switch a {
	case Defer:
		return "defer"
	case Serve:
		return "serve"
	case HandOff:
		return "handoff"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decision is the election's verdict for one client request.
type Decision struct {
	Action Action
	// Agent is the agent that answers: this one for Serve, the claimant
	// for Defer (0 when not known yet), the target for HandOff.
	Agent AgentID
	// Rank is this agent's position for the client (0 = first), -1 when
	// it may not answer (weight 0, not ready yet). Positions past
	// Config.FailoverDepth are reported as FailoverDepth+1.
	Rank int
	// Payload is Central's answer when another agent handed the client to
	// this one (Serve only); nil otherwise. Do not modify it.
	Payload []byte
	// Image is the image hash carried with a handoff to this agent.
	Image uint64
}

// WeightOf returns a pointer for Config.Weight.
func WeightOf(w uint8) *uint8 { return &w }

// clientState is what this agent knows about one client.
type clientState struct {
	key           ClientKey
	owner         AgentID // agent whose claim pins the client
	holdUntil     int64   // Unix ns; the claim holds until then
	lastClaimRecv int64   // Unix ns a claim for it was last received
	lastClaimSent int64   // Unix ns this agent last claimed it
	round         *round  // pending election on this agent
	handoff       *handoffWait
	handed        *handedHere // set while this agent owns a client handed to it
}

// handedHere is a client another agent handed to this one.
type handedHere struct {
	image   uint64 // the image
	payload []byte // Central's answer
	by      AgentID
	at      int64 // Unix ns it was taken
}

func (st *clientState) payloadImage() ([]byte, uint64) {
	if st.handed == nil {
		return nil, 0
	}
	return st.handed.payload, st.handed.image
}

// round is a pending election: this agent answers at deadline unless a
// claim arrives first.
type round struct {
	rank    int
	timer   Timer
	waiters []func(Decision)
}

// handoffWait is a handoff waiting for the target's claim.
type handoffWait struct {
	target  AgentID   // the holder asked now
	tried   []AgentID // this agent and every holder asked so far
	msg     wire.Handoff
	timer   Timer
	waiters []func(Decision)
}

// Elector is one agent's side of the subnet election.
type Elector struct {
	cfg   Config
	clock Clock
	tr    Transport
	stats counters

	mu      sync.Mutex
	codec   *wire.Codec
	self    *member
	members []*member // includes self
	byID    map[AgentID]*member
	replay  map[uint64]*replayState
	clients map[[6]byte]*clientState
	nonce   uint64
	rng     *rand.Rand
	hbTimer Timer
	started bool
	closed  bool
	// next announcement, applied to self when the heartbeat is sent so
	// every agent ranks with the same numbers.
	pendWeight      uint8
	pendTransfers   uint32
	pendBytesPerSec uint64
	pendImages      []uint64
	annEpoch        int64 // load epoch of the last heartbeat
	annNow, annNext wire.Load
	lastSweep       time.Time // of the client table
	sendBuf         []byte
	dec             wire.Message
	later           []pendingCall // callbacks to run once mu is released

	recvDone chan struct{}
	stop     chan struct{} // closed by Close
}

// New returns an Elector for cfg over tr, timed by clock (nil means
// SystemClock). Call Start to announce it and begin answering.
func New(cfg Config, clock Clock, tr Transport) (*Elector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if tr == nil {
		return nil, errors.New("election: nil transport")
	}
	if clock == nil {
		clock = SystemClock{}
	}
	codec, err := wire.NewCodec(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	now := clock.Now()
	self := &member{id: cfg.Agent, seed: mix64(uint64(cfg.Agent)), interval: cfg.HeartbeatInterval, addr: cfg.Addr}
	self.heard(now)
	e := &Elector{
		cfg:        cfg,
		clock:      clock,
		tr:         tr,
		codec:      codec,
		self:       self,
		members:    []*member{self},
		byID:       map[AgentID]*member{cfg.Agent: self},
		replay:     map[uint64]*replayState{},
		clients:    map[[6]byte]*clientState{},
		nonce:      uint64(now.UnixMicro()),
		rng:        rand.New(rand.NewPCG(uint64(cfg.Agent), uint64(now.UnixNano()))),
		pendWeight: *cfg.Weight,
		stop:       make(chan struct{}),
	}
	return e, nil
}

// ID is this agent's id.
func (e *Elector) ID() AgentID { return e.cfg.Agent }

// Config returns the effective configuration (defaults applied).
func (e *Elector) Config() Config { return e.cfg }

// Start announces the agent and starts heartbeats; if the transport is a
// Receiver it also starts reading it. The agent may answer clients from its
// second heartbeat on, once every peer has had a chance to hear of it.
// Cancelling ctx closes the Elector.
func (e *Elector) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started || e.closed {
		e.mu.Unlock()
		return errors.New("election: already started or closed")
	}
	e.started = true
	e.heartbeatLocked()
	e.unlock()
	if r, ok := e.tr.(Receiver); ok {
		e.recvDone = make(chan struct{})
		go e.receiveLoop(r)
	}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = e.Close()
			case <-e.stop:
			}
		}()
	}
	return nil
}

func (e *Elector) receiveLoop(r Receiver) {
	defer close(e.recvDone)
	buf := make([]byte, 2048)
	backoff := time.Duration(0)
	for {
		n, err := r.Recv(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			e.stats.recvErrors.Add(1)
			e.cfg.Logger.Warn("election: receive", "err", err)
			// A persistent error (interface gone) must not spin.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			select {
			case <-e.stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		e.Receive(buf[:n])
	}
}

// Close announces that the agent leaves (peers drop it at once), stops
// the timers and closes the transport if it is an io.Closer.
func (e *Elector) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	var err error
	if e.started {
		err = e.sendHeartbeatLocked(wire.FlagLeaving)
	}
	e.closed = true
	close(e.stop)
	if e.hbTimer != nil {
		e.hbTimer.Stop()
	}
	for _, st := range e.clients {
		if st.round != nil {
			st.round.timer.Stop()
			e.resolveRound(st, Decision{Action: Defer, Rank: -1})
		}
		if st.handoff != nil {
			st.handoff.timer.Stop()
			e.resolveHandoff(st, Decision{Action: Defer, Rank: -1})
		}
	}
	e.unlock()
	if c, ok := e.tr.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("election: close transport: %w", cerr)
		}
	}
	if e.recvDone != nil {
		<-e.recvDone
	}
	return err
}

// pendingCall is a callback queued to run once mu is released: done(d),
// or f().
type pendingCall struct {
	done func(Decision)
	d    Decision
	f    func()
}

// unlock releases mu and then runs the callbacks queued while it was held.
func (e *Elector) unlock() {
	if len(e.later) == 0 {
		e.mu.Unlock()
		return
	}
	calls := e.later
	e.later = nil
	e.mu.Unlock()
	for i := range calls {
		if c := &calls[i]; c.done != nil {
			c.done(c.d)
		} else {
			c.f()
		}
	}
}

func (e *Elector) callLater(f func(Decision), d Decision) {
	e.later = append(e.later, pendingCall{done: f, d: d})
}

// SetWeight changes ElectionWeight (0-99) from the next heartbeat on.
func (e *Elector) SetWeight(w uint8) error {
	if w > 99 {
		return fmt.Errorf("election: weight %d is above 99", w)
	}
	e.mu.Lock()
	e.pendWeight = w
	e.mu.Unlock()
	return nil
}

// SetLoad reports this agent's load (active transfers and bytes per
// second) for the next heartbeat.
func (e *Elector) SetLoad(transfers uint32, bytesPerSec uint64) {
	e.mu.Lock()
	e.pendTransfers, e.pendBytesPerSec = transfers, bytesPerSec
	e.mu.Unlock()
}

// SetImages reports the boot image ids this agent holds, for the next
// heartbeat (at most wire.MaxImages are announced).
func (e *Elector) SetImages(ids []string) {
	hs := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if h := wire.ImageHash(id); h != 0 {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	if len(hs) > wire.MaxImages {
		hs = hs[:wire.MaxImages]
	}
	e.mu.Lock()
	e.pendImages = hs
	e.mu.Unlock()
}

// Member is a snapshot of one agent in the view.
type Member struct {
	Agent       AgentID
	Addr        netip.Addr // as announced (invalid if none)
	Weight      uint8
	Ready       bool
	Transfers   uint32
	BytesPerSec uint64
	Images      int
	LastSeen    time.Time
	Self        bool
}

// Members returns the live members of the view, self included.
func (e *Elector) Members() []Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	out := make([]Member, 0, len(e.members))
	for _, m := range e.members {
		if m == e.self || m.live(now.UnixNano()) {
			l := m.load(now.UnixNano())
			out = append(out, Member{Agent: m.id, Addr: m.addr, Weight: l.weight, Ready: m.eligible(now.UnixNano()), Transfers: l.transfers, BytesPerSec: l.bytesPerSec, Images: len(m.images), LastSeen: m.lastSeen, Self: m == e.self})
		}
	}
	return out
}

// Rank returns the eligible agents ordered for the client (best first),
// as every agent with the same view computes it, appended to dst.
func (e *Elector) Rank(dst []AgentID, client ClientKey, needImage string) []AgentID {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r Ranker
	return r.rank(dst, e.members, e.clock.Now().UnixNano(), client.MAC, wire.ImageHash(needImage))
}

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
	pos := e.positionLocked(st, pinned, now, image)
	switch {
	case pos < 0:
		e.stats.deferred.Add(1)
		e.callLater(done, Decision{Action: Defer, Agent: pinned, Rank: -1})
	case pos > e.cfg.FailoverDepth || (pos > 0 && !tracked):
		// Too deep to answer by timeout, or no room to hear the claim
		// that would stop the timeout.
		e.stats.deferred.Add(1)
		e.callLater(done, Decision{Action: Defer, Agent: pinned, Rank: pos})
	case pos == 0:
		e.claimLocked(st, image, now)
		e.stats.served.Add(1)
		e.callLater(done, Decision{Action: Serve, Agent: e.self.id, Rank: 0})
	default:
		r := &round{rank: pos, waiters: []func(Decision){done}}
		st.round = r
		r.timer = e.clock.AfterFunc(time.Duration(pos)*e.cfg.ElectionWait, func() { e.roundExpired(st, r, image) })
	}
}

func (e *Elector) positionLocked(st *clientState, pinned AgentID, now time.Time, image uint64) int {
	return position(e.members, e.self, pinned, now.UnixNano(), st.key.MAC, image, e.cfg.FailoverDepth)
}

// pinned is the agent whose claim on the client still holds, or 0.
func (e *Elector) pinned(st *clientState, now time.Time) AgentID {
	if st.owner == 0 || now.UnixNano() > st.holdUntil {
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
	if st.owner != e.self.id {
		st.handed = nil
	}
	st.owner = e.self.id
	st.holdUntil = now.Add(e.cfg.Reserve).UnixNano()
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
		}
		e.annEpoch = ep
	}
	s := e.self
	s.now, s.next = newLoadState(e.annNow), newLoadState(e.annNext)
	s.switchAt = (e.annEpoch + 1) * epochMS * int64(time.Millisecond)
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
	m.now, m.next = newLoadState(hb.Now), newLoadState(hb.Next)
	epochMS := min(int64(hb.EpochMS), int64(time.Hour/time.Millisecond))
	m.switchAt = (sentMS/epochMS + 1) * epochMS * int64(time.Millisecond)
	iv := time.Duration(hb.IntervalMS) * time.Millisecond
	m.interval = min(max(iv, 50*time.Millisecond), time.Minute)
	m.heard(now)
	m.addr = netipFrom16(hb.Addr)
	m.images = append(m.images[:0], hb.Images...)
	slices.Sort(m.images)
}

func (e *Elector) onClaim(from AgentID, cl *wire.Claim, now time.Time) {
	key := ClientKey{MAC: cl.Client.MAC, HasGUID: cl.Client.HasGUID, GUID: cl.Client.GUID}
	st := e.clientState(key, true)
	if st == nil {
		e.stats.clientTableFull.Add(1)
		return
	}
	hold := min(time.Duration(cl.HoldMS)*time.Millisecond, 10*time.Minute)
	st.lastClaimRecv = now.UnixNano()
	switch {
	case st.handoff != nil && st.handoff.target == from:
		// The holder took the client this agent handed over.
		st.handoff.timer.Stop()
		e.setOwner(st, from, now.Add(hold))
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
	e.setOwner(st, from, now.Add(hold))
	if st.round != nil {
		st.round.timer.Stop()
		e.stats.deferred.Add(uint64(len(st.round.waiters)))
		e.resolveRound(st, Decision{Action: Defer, Agent: from, Rank: st.round.rank})
	}
}

func (e *Elector) setOwner(st *clientState, owner AgentID, until time.Time) {
	if owner != st.owner {
		st.handed = nil
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
