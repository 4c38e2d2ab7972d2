package reliability

import (
	"testing"
	"time"

	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/election/sim"
	"github.com/peerboot/peerboot/election/wire"
)

var electionKey = []byte("reliability-site-key-0123456789")

func electionConfig() election.Config {
	return election.Config{
		Key:               electionKey,
		Subnet:            0x5eed,
		ElectionWait:      200 * time.Millisecond,
		Reserve:           30 * time.Second,
		HeartbeatInterval: time.Second,
		LoadEpoch:         4 * time.Second,
	}
}

// rogue is an election participant of its own making: it announces weight
// 99 in heartbeats and claims, at once and for the longest hold, every
// client it hears, and never answers any of them.
type rogue struct {
	n     *sim.Network
	codec *wire.Codec
	id    uint64
	nonce uint64
	sent  int
}

func newRogue(n *sim.Network, key []byte) *rogue {
	c, err := wire.NewCodec(key)
	if err != nil {
		panic(err)
	}
	return &rogue{n: n, codec: c, id: 0xbad, nonce: uint64(n.Clock.Now().UnixMicro())}
}

func (r *rogue) header() wire.Header {
	r.nonce++
	return wire.Header{Subnet: electionConfig().Subnet, Sender: r.id, Time: r.n.Clock.Now().UnixMilli(), Nonce: r.nonce}
}

func (r *rogue) broadcast(msg []byte) {
	r.sent++
	for i := range r.n.Nodes {
		r.n.Inject(i, msg, 50*time.Microsecond)
	}
}

// heartbeats announces weight 99 every second from now on.
func (r *rogue) heartbeats() {
	hb := wire.Heartbeat{IntervalMS: 1000, EpochMS: 4000, Now: wire.Load{Weight: 99}, Next: wire.Load{Weight: 99}}
	msg, err := r.codec.AppendHeartbeat(nil, r.header(), &hb)
	if err != nil {
		panic(err)
	}
	r.broadcast(msg)
	r.n.Clock.AfterFunc(time.Second, r.heartbeats)
}

// claim claims a client for ten minutes.
func (r *rogue) claim(c election.ClientKey) {
	cl := wire.Claim{Client: wire.Client{MAC: c.MAC}, HoldMS: 600_000}
	r.broadcast(r.codec.AppendClaim(nil, r.header(), &cl))
}

// rogueOutcome is what the clients of one run saw.
type rogueOutcome struct {
	clients, booted, firstTry, multiple int
	attempts                            []int
	rogueInView                         bool
}

// runWithRogue runs 3 honest agents (weight 50) and a rogue; each client
// retries its DISCOVER every 4 s up to attempts times, like PXE firmware,
// and counts as booted once an honest agent answers it.
func runWithRogue(t *testing.T, rogueKey []byte, clients, attempts int) rogueOutcome {
	t.Helper()
	n, err := sim.Scenario{Seed: 7, Agents: 3, Config: electionConfig()}.Build()
	if err != nil {
		t.Fatal(err)
	}
	r := newRogue(n, rogueKey)
	r.heartbeats()
	n.Clock.RunFor(12 * time.Second) // the rogue's weight takes effect (two epochs)
	out := rogueOutcome{clients: clients, attempts: make([]int, clients)}
	for _, m := range n.Nodes[0].Elector.Members() {
		if uint64(m.Agent) == r.id && m.Ready {
			out.rogueInView = true
		}
	}
	answers := make([]int, clients)
	var ask func(i int)
	ask = func(i int) {
		out.attempts[i]++
		key := election.ClientKey{MAC: sim.ClientMAC(i)}
		r.claim(key) // the rogue hears the broadcast too and claims at once
		n.Discover(key, "", func(nd *sim.Node, d election.Decision) {
			if d.Action == election.Serve {
				answers[i]++
			}
		})
		n.Clock.AfterFunc(4*time.Second, func() {
			if answers[i] == 0 && out.attempts[i] < attempts {
				ask(i)
			}
		})
	}
	for i := 0; i < clients; i++ {
		n.Clock.AfterFunc(time.Duration(i)*5*time.Millisecond, func() { ask(i) })
	}
	n.Clock.RunFor(time.Duration(clients)*5*time.Millisecond + time.Duration(attempts+1)*4*time.Second)
	for i, a := range answers {
		switch {
		case a == 0:
			continue
		case a > 1:
			out.multiple++
		}
		out.booted++
		if out.attempts[i] == 1 {
			out.firstTry++
		}
	}
	var st election.Stats
	for _, nd := range n.Nodes {
		s := nd.Elector.Stats()
		st.DroppedAuth += s.DroppedAuth
		st.ClaimsReceived += s.ClaimsReceived
	}
	t.Logf("rogue sent %d messages; honest agents dropped %d as unauthentic, accepted %d claims; rogue in view: %v; %d/%d clients booted (%d at the first try, %d with two answers)",
		r.sent, st.DroppedAuth, st.ClaimsReceived, out.rogueInView, out.booted, clients, out.firstTry, out.multiple)
	return out
}

// TestRogueWithoutSiteKeyChangesNothing: a rogue on the LAN without the
// site key announces weight 99 and claims every client. Its messages fail
// authentication, it never enters the view, and every client is answered
// by exactly one honest agent at its first DISCOVER.
func TestRogueWithoutSiteKeyChangesNothing(t *testing.T) {
	const clients = 2000
	out := runWithRogue(t, []byte("guessed-key-of-the-attacker-0000"), clients, 5)
	if out.rogueInView {
		t.Fatal("a rogue without the site key entered the election view")
	}
	if out.booted != clients || out.firstTry != clients || out.multiple != 0 {
		t.Fatalf("%d/%d clients booted, %d at the first try, %d answered twice; want all once at the first try",
			out.booted, clients, out.firstTry, out.multiple)
	}
}
