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
	// Config.FailoverDepth are reported as FailoverDepth+1. Near a
	// load-epoch boundary the first on the new side, waiting for the
	// boundary guard, reports 1.
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
	// A client that keeps asking while another agent holds it was not
	// answered by that agent: from the second such retry its pin and
	// claims are ignored for this client until its hold would have ended.
	lastRequest   int64   // Unix ns of the client's last request here
	retriesPinned int     // retries heard while pinned to another agent
	distrusted    AgentID // owner whose pin is ignored for this client
	distrustUntil int64   // Unix ns
}

// distrusts reports whether a's claims on the client are ignored now.
func (st *clientState) distrusts(a AgentID, now int64) bool {
	return a != 0 && a == st.distrusted && now < st.distrustUntil
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
	bal             balancer  // this agent's score of clients due and won
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
	Agent  AgentID
	Addr   netip.Addr // as announced (invalid if none)
	Weight uint8
	// Balance is the weight multiplier in force that evens out the
	// clients the hash gave the agent (1 = none; 0.5 to 2).
	Balance     float64
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
			out = append(out, Member{Agent: m.id, Addr: m.addr, Weight: l.weight, Balance: l.multiplier(), Ready: m.eligible(now.UnixNano()), Transfers: l.transfers, BytesPerSec: l.bytesPerSec, Images: len(m.images), LastSeen: m.lastSeen, Self: m == e.self})
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
