package election

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

var testKey = []byte("election-unit-test-key-0123456789")

// hub is an in-memory broadcast segment for real-time tests.
type hub struct {
	mu    sync.Mutex
	ports []*hubPort
}

type hubPort struct {
	h      *hub
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

func (h *hub) port() *hubPort {
	p := &hubPort{h: h, in: make(chan []byte, 1024), closed: make(chan struct{})}
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	return p
}

func (p *hubPort) Send(msg []byte) error {
	b := append([]byte(nil), msg...)
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, q := range p.h.ports {
		select {
		case q.in <- b: // loops back to the sender too, like UDP broadcast
		default:
		}
	}
	return nil
}

func (p *hubPort) Recv(buf []byte) (int, error) {
	select {
	case b := <-p.in:
		return copy(buf, b), nil
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

func (p *hubPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func fastConfig(id AgentID) Config {
	// Generous waits: only a failover waits them out, and a loaded test
	// machine must not stall longer than them.
	return Config{Agent: id, Subnet: 7, Key: testKey, HeartbeatInterval: 100 * time.Millisecond, ElectionWait: 500 * time.Millisecond}
}

// waitFor polls cond (bounded) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRealTimeElectorsAgreeAndLeave(t *testing.T) {
	h := &hub{}
	var es []*Elector
	for i := 1; i <= 3; i++ {
		e, err := New(fastConfig(AgentID(i)), nil, h.port())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
		defer e.Close()
	}
	waitFor(t, "three ready members everywhere", func() bool {
		for _, e := range es {
			ready := 0
			for _, m := range e.Members() {
				if m.Ready {
					ready++
				}
			}
			if ready != 3 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for c := 0; c < 30; c++ {
		key := ClientKey{MAC: [6]byte{2, 0, 0, 0, 0, byte(c)}}
		ds := make([]Decision, len(es))
		var wg sync.WaitGroup
		for i, e := range es {
			wg.Add(1)
			go func() { defer wg.Done(); ds[i] = e.Decide(ctx, key, "") }()
		}
		wg.Wait()
		servers := 0
		var server AgentID
		for i, d := range ds {
			if d.Action == Serve {
				servers++
				server = es[i].ID()
			}
		}
		if servers != 1 {
			t.Fatalf("client %d: %d agents serve: %+v", c, servers, ds)
		}
		want := es[0].Rank(nil, key, "")[0]
		if server != want {
			t.Fatalf("client %d served by %d, ranking says %d", c, server, want)
		}
	}
	if err := es[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leaving agent dropped at once", func() bool {
		return len(es[0].Members()) == 2 && len(es[1].Members()) == 2
	})
	if es[0].Stats().MembersLeft == 0 {
		t.Fatal("leave not counted")
	}
	if d := es[2].Decide(ctx, ClientKey{}, ""); d.Action != Defer {
		t.Fatalf("a closed elector decided %v", d.Action)
	}
}

// manualClock is a clock moved by hand; AfterFunc timers fire on Advance.
type manualClock struct {
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (t *manualTimer) Stop() bool { s := !t.stopped; t.stopped = true; return s }

func (c *manualClock) Now() time.Time { return c.now }
func (c *manualClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &manualTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Step advances by total in steps of step, so periodic timers keep firing.
func (c *manualClock) Step(total, step time.Duration) {
	for t := time.Duration(0); t < total; t += step {
		c.Advance(step)
	}
}

func (c *manualClock) Advance(d time.Duration) {
	c.now = c.now.Add(d)
	for {
		fired := false
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(c.now) {
				t.stopped = true
				t.f()
				fired = true
			}
		}
		if !fired {
			return
		}
	}
}

type capture struct{ msgs [][]byte }

func (c *capture) Send(m []byte) error {
	c.msgs = append(c.msgs, append([]byte(nil), m...))
	return nil
}

func TestReceiveDropsAndCounts(t *testing.T) {
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	tr := &capture{}
	e, err := New(fastConfig(1), clk, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	good, _ := wire.NewCodec(testKey)
	bad, _ := wire.NewCodec([]byte("some-other-site-key!!"))
	hdr := func(subnet uint64, nonce uint64, at time.Time) wire.Header {
		return wire.Header{Subnet: subnet, Sender: 2, Time: at.UnixMilli(), Nonce: nonce}
	}
	hb := &wire.Heartbeat{IntervalMS: 50, EpochMS: 500, Now: wire.Load{Weight: 50}, Next: wire.Load{Weight: 50}}
	legit, _ := good.AppendHeartbeat(nil, hdr(7, 100, clk.now), hb)
	oldVersion := append([]byte(nil), legit...)
	oldVersion[2] = 0
	wrongKey, _ := bad.AppendHeartbeat(nil, hdr(7, 101, clk.now), hb)
	otherSubnet, _ := good.AppendHeartbeat(nil, hdr(8, 102, clk.now), hb)
	stale, _ := good.AppendHeartbeat(nil, hdr(7, 103, clk.now.Add(-time.Minute)), hb)
	future, _ := good.AppendHeartbeat(nil, hdr(7, 104, clk.now.Add(time.Minute)), hb)
	tests := []struct {
		name  string
		msg   []byte
		field func(Stats) uint64
	}{
		{"legit", legit, func(s Stats) uint64 { return s.Accepted }},
		{"replay", legit, func(s Stats) uint64 { return s.DroppedReplay }},
		{"old version", oldVersion, func(s Stats) uint64 { return s.DroppedVersion }},
		{"wrong key", wrongKey, func(s Stats) uint64 { return s.DroppedAuth }},
		{"other subnet", otherSubnet, func(s Stats) uint64 { return s.DroppedSubnet }},
		{"stale", stale, func(s Stats) uint64 { return s.DroppedStale }},
		{"future", future, func(s Stats) uint64 { return s.DroppedStale }},
		{"garbage", []byte("hello"), func(s Stats) uint64 { return s.DroppedMalformed }},
		{"own echo", tr.msgs[0], func(s Stats) uint64 { return s.OwnEcho }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.field(e.Stats())
			members := len(e.Members())
			e.Receive(tt.msg)
			if got := tt.field(e.Stats()); got != before+1 {
				t.Fatalf("counter went %d -> %d, want +1", before, got)
			}
			if tt.name != "legit" && len(e.Members()) != members {
				t.Fatalf("a dropped message changed the view")
			}
		})
	}
	if len(e.Members()) != 2 {
		t.Fatalf("view has %d members, want self and agent 2", len(e.Members()))
	}
	// Silent for three intervals: gone from the view.
	clk.Advance(3*50*time.Millisecond + time.Millisecond)
	if n := len(e.Members()); n != 1 {
		t.Fatalf("agent 2 still in view after 3 silent intervals (%d members)", n)
	}
}

func TestConfigValidation(t *testing.T) {
	w100 := uint8(100)
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no agent", func(c *Config) { c.Agent = 0 }},
		{"short key", func(c *Config) { c.Key = []byte("short") }},
		{"weight 100", func(c *Config) { c.Weight = &w100 }},
		{"interval too short", func(c *Config) { c.HeartbeatInterval = time.Millisecond }},
		{"epoch too short", func(c *Config) { c.LoadEpoch = 3 * c.HeartbeatInterval }},
		{"guard over a quarter epoch", func(c *Config) { c.LoadEpoch = 4 * c.HeartbeatInterval; c.BoundaryGuard = c.HeartbeatInterval + 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig(1)
			tt.mod(&cfg)
			if _, err := New(cfg, nil, &capture{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	e, err := New(Config{Agent: 1, Key: testKey}, nil, &capture{})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if *c.Weight != DefaultWeight || c.ElectionWait != DefaultElectionWait || c.Reserve != DefaultReserve || c.FailoverDepth != DefaultFailoverDepth {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.BoundaryGuard != DefaultBoundaryGuard {
		t.Fatalf("boundary guard %v, want %v", c.BoundaryGuard, DefaultBoundaryGuard)
	}
	short := fastConfig(1)
	short.LoadEpoch = 4 * short.HeartbeatInterval
	if e, err := New(short, nil, &capture{}); err != nil || e.Config().BoundaryGuard != min(DefaultBoundaryGuard, short.LoadEpoch/4) {
		t.Fatalf("short epoch %v: guard not capped at a quarter of it (%v)", short.LoadEpoch, err)
	}
	if err := e.SetWeight(100); err == nil {
		t.Fatal("SetWeight(100) accepted")
	}
	if _, err := New(fastConfig(1), nil, nil); err == nil {
		t.Fatal("nil transport accepted")
	}
}

func TestWeightZeroAndHandoffWithoutHolder(t *testing.T) {
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	cfg := fastConfig(1)
	cfg.Weight = WeightOf(0)
	e, err := New(cfg, clk, &capture{})
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Decide(context.Background(), ClientKey{}, ""); d.Action != Defer {
		t.Fatalf("before Start: %v", d.Action)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Step(2*time.Second, 25*time.Millisecond)
	if d := e.Decide(context.Background(), ClientKey{MAC: [6]byte{1}}, ""); d.Action != Defer || d.Rank != -1 {
		t.Fatalf("weight 0 decided %+v", d)
	}
	if err := e.SetWeight(10); err != nil {
		t.Fatal(err)
	}
	clk.Step(2500*time.Millisecond, 25*time.Millisecond) // two load epochs: the new weight is in force
	d := e.Decide(context.Background(), ClientKey{MAC: [6]byte{1}}, "")
	if d.Action != Serve {
		t.Fatalf("alone with weight 10 decided %+v", d)
	}
	if h := e.HandOff(context.Background(), ClientKey{MAC: [6]byte{1}}, "winpe", []byte("x")); h.Action != Serve {
		t.Fatalf("handoff with no holder: %v", h.Action)
	}
	if e.Stats().HandoffNoHolder != 1 {
		t.Fatal("missing holder not counted")
	}
	if err := e.Start(context.Background()); err == nil {
		t.Fatal("second Start accepted")
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Defer: "defer", Serve: "serve", HandOff: "handoff", Action(9): "action(9)"} {
		if got := a.String(); got != want {
			t.Errorf("%d: %q, want %q", a, got, want)
		}
	}
}

// flakyPort fails its first reads, then delivers like a hub port.
type flakyPort struct {
	*hubPort
	failures chan struct{}
}

func (p *flakyPort) Recv(buf []byte) (int, error) {
	select {
	case <-p.failures:
		return 0, errors.New("transient receive error")
	default:
		return p.hubPort.Recv(buf)
	}
}

func TestReceiveErrorsAreCountedAndSurvived(t *testing.T) {
	h := &hub{}
	fp := &flakyPort{hubPort: h.port(), failures: make(chan struct{}, 3)}
	for i := 0; i < 3; i++ {
		fp.failures <- struct{}{}
	}
	a, err := New(fastConfig(1), nil, fp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(fastConfig(2), nil, h.port())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Elector{a, b} {
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer e.Close()
	}
	waitFor(t, "agent 1 to hear agent 2 after its receive errors", func() bool { return len(a.Members()) == 2 })
	if got := a.Stats().RecvErrors; got != 3 {
		t.Fatalf("RecvErrors = %d, want 3", got)
	}
}

func TestRestartedPeerWithLowerNonceIsHeardAgain(t *testing.T) {
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	e, err := New(fastConfig(1), clk, &capture{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, _ := wire.NewCodec(testKey)
	hb := func(nonce uint64) []byte {
		b, _ := c.AppendHeartbeat(nil, wire.Header{Subnet: 7, Sender: 2, Time: clk.now.UnixMilli(), Nonce: nonce},
			&wire.Heartbeat{IntervalMS: 100, EpochMS: 1000, Now: wire.Load{Weight: 1}, Next: wire.Load{Weight: 1}})
		return b
	}
	e.Receive(hb(1_000_000))
	e.Receive(hb(5)) // restarted with its clock stepped back
	if s := e.Stats(); s.Accepted != 1 || s.DroppedReplay != 1 {
		t.Fatalf("accepted %d, replays %d; want 1 and 1", s.Accepted, s.DroppedReplay)
	}
	clk.Step(2*DefaultMaxClockSkew+time.Second, 50*time.Millisecond)
	e.Receive(hb(6))
	if s := e.Stats(); s.Accepted != 2 {
		t.Fatalf("the restarted peer is still not heard after 2 x MaxClockSkew (accepted %d)", s.Accepted)
	}
}
