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

// TestReplayedAndTamperedClaimsChangeNothing: an attacker without the key
// captures the agents' own claims and, before every new client, replays
// all of them and sends tampered copies re-aimed at the new client. Every
// client is still answered once, at its first DISCOVER, and the drops are
// counted as replays and authentication failures.
func TestReplayedAndTamperedClaimsChangeNothing(t *testing.T) {
	n, err := sim.Scenario{Seed: 9, Agents: 3, Config: electionConfig()}.Build()
	if err != nil {
		t.Fatal(err)
	}
	var captured [][]byte
	n.Tap = func(from int, msg []byte) {
		if len(msg) > 3 && wire.Type(msg[3]) == wire.TypeClaim {
			captured = append(captured, append([]byte(nil), msg...))
		}
	}
	const clients = 300
	answers := make([]int, clients)
	injected := 0
	for i := 0; i < clients; i++ {
		mac := sim.ClientMAC(i)
		for _, m := range captured {
			for to := range n.Nodes {
				n.Inject(to, m, 20*time.Microsecond) // replay as is
				tampered := append([]byte(nil), m...)
				copy(tampered[38:44], mac[:]) // the claim's client MAC
				n.Inject(to, tampered, 20*time.Microsecond)
				injected += 2
			}
		}
		if len(captured) > 20 {
			captured = captured[len(captured)-20:]
		}
		n.Discover(election.ClientKey{MAC: mac}, "", func(nd *sim.Node, d election.Decision) {
			if d.Action == election.Serve {
				answers[i]++
			}
		})
		n.Clock.RunFor(1500 * time.Millisecond)
	}
	var st election.Stats
	for _, nd := range n.Nodes {
		s := nd.Elector.Stats()
		st.DroppedAuth += s.DroppedAuth
		st.DroppedReplay += s.DroppedReplay
		st.DroppedStale += s.DroppedStale
		st.OwnEcho += s.OwnEcho
	}
	once := 0
	for _, a := range answers {
		if a == 1 {
			once++
		}
	}
	t.Logf("%d messages injected; dropped %d as replays, %d as stale, %d as unauthentic, %d as the receiver's own echo; %d/%d clients answered exactly once",
		injected, st.DroppedReplay, st.DroppedStale, st.DroppedAuth, st.OwnEcho, once, clients)
	if once != clients {
		t.Fatalf("%d of %d clients answered exactly once under replayed and tampered claims", once, clients)
	}
	if st.DroppedReplay == 0 || st.DroppedAuth == 0 {
		t.Fatalf("replays dropped %d, tampered dropped %d: the attack did not run", st.DroppedReplay, st.DroppedAuth)
	}
}
