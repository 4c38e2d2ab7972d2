package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/election/wire"
)

type answer struct {
	agent int
	at    time.Duration // after the request
}

// ask sends one request of client c and returns the answers collected
// until the clock is next run past them.
func ask(n *Network, c election.ClientKey) *[]answer {
	var got []answer
	start := n.Clock.Now()
	n.Discover(c, "", func(nd *Node, d election.Decision) {
		if d.Action == election.Serve {
			got = append(got, answer{nd.Index, n.Clock.Now().Sub(start)})
		}
	})
	return &got
}

func build(t *testing.T, agents int, loss float64, seed uint64) *Network {
	t.Helper()
	n, err := Scenario{Seed: seed, Agents: agents, Loss: loss, Config: baseConfig()}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKilledOwnerFailsOverOnNextRetry(t *testing.T) {
	const clients = 600
	wait := baseConfig().ElectionWait
	for _, tc := range []struct {
		loss       float64
		retryAfter time.Duration
	}{{0, 500 * time.Millisecond}, {0, 2 * time.Second}, {0, 5 * time.Second}, {0.01, 500 * time.Millisecond}, {0.01, 5 * time.Second}} {
		retryAfter := tc.retryAfter
		t.Run(fmt.Sprintf("loss-%v-retry-after-%v", tc.loss, retryAfter), func(t *testing.T) {
			n := build(t, 10, tc.loss, 11)
			first := make([]*[]answer, clients)
			for i := range first {
				first[i] = ask(n, election.ClientKey{MAC: ClientMAC(i)})
				n.Clock.RunFor(2 * time.Millisecond)
			}
			n.Clock.RunFor(time.Second)
			owner := make([]int, clients)
			perAgent := make([]int, 10)
			for i, a := range first {
				if len(*a) != 1 {
					t.Fatalf("client %d: %d answers before the kill", i, len(*a))
				}
				owner[i] = (*a)[0].agent
				perAgent[owner[i]]++
			}
			victim := 0
			for i, c := range perAgent {
				if c > perAgent[victim] {
					victim = i
				}
			}
			n.Nodes[victim].Kill()
			n.Clock.RunFor(retryAfter)
			retries := make([]*[]answer, clients)
			for i := range retries {
				retries[i] = ask(n, election.ClientKey{MAC: ClientMAC(i)})
				n.Clock.RunFor(2 * time.Millisecond)
			}
			n.Clock.RunFor(2 * time.Second)
			orphans, moved, slow := 0, 0, 0
			for i, a := range retries {
				if len(*a) != 1 {
					t.Fatalf("client %d (owner %d, victim %d): %d answers to the retry: %v", i, owner[i], victim, len(*a), *a)
				}
				got := (*a)[0]
				if got.agent == victim {
					t.Fatalf("client %d answered by the dead agent", i)
				}
				if owner[i] != victim {
					if got.agent != owner[i] {
						// Only when the owner missed the retry (lost).
						moved++
						if tc.loss == 0 {
							t.Fatalf("client %d moved from live agent %d to %d: the claim did not hold", i, owner[i], got.agent)
						}
					}
					continue
				}
				orphans++
				// The retry reaches agents within MaxDelay; the next in rank
				// answers after one ElectionWait at most, unless the retry
				// was lost on its way to that agent too.
				if limit := wait + n.MaxDelay; got.at > limit {
					slow++
					if tc.loss == 0 || got.at > time.Duration(election.DefaultFailoverDepth)*wait+n.MaxDelay {
						t.Fatalf("client %d of the dead agent answered after %v, limit %v", i, got.at, limit)
					}
				}
			}
			if slow > orphans/20 {
				t.Fatalf("%d of %d orphaned clients answered after more than one ElectionWait", slow, orphans)
			}
			if moved > clients*3/100 {
				t.Fatalf("%d clients of live agents moved", moved)
			}
			if orphans == 0 {
				t.Fatal("the victim owned no client: the test proves nothing")
			}
			t.Logf("agent %d killed; its %d clients answered by others on their retry (%d after more than one wait: retry lost to the next agent); %d clients of live agents moved (owner missed the retry)", victim, orphans, slow, moved)
		})
	}
}

func TestPartitionEachSideServesItsOwn(t *testing.T) {
	const agents, clients = 10, 400
	n := build(t, agents, 0.01, 12)
	side := func(i int) int { return i % 2 }
	n.Blocked = func(from, to int) bool { return side(from) != side(to) }
	n.ClientReach = func(c election.ClientKey, nd *Node) bool { return side(ClientIndex(c.MAC)) == side(nd.Index) }
	check := func(phase string, offset int, settle time.Duration) {
		t.Helper()
		got := make([]*[]answer, clients)
		for i := range got {
			got[i] = ask(n, election.ClientKey{MAC: ClientMAC(offset + i)})
			n.Clock.RunFor(5 * time.Millisecond)
		}
		n.Clock.RunFor(settle)
		for i, a := range got {
			c := offset + i
			if len(*a) > 1 {
				t.Fatalf("%s: client %d answered %d times", phase, c, len(*a))
			}
			for _, x := range *a {
				if side(x.agent) != side(c) {
					t.Fatalf("%s: client %d answered across the partition by %d", phase, c, x.agent)
				}
			}
			if len(*a) == 0 && phase != "split" {
				t.Fatalf("%s: client %d not answered", phase, c)
			}
		}
	}
	// Right after the split the views still hold the far side: clients
	// whose first ranks are all there wait for their retry.
	check("split", 0, 2*time.Second)
	n.Clock.RunFor(4 * time.Second) // both views drop the far side
	check("settled", 1000, 2*time.Second)
	for _, nd := range n.Nodes {
		if got := len(nd.Elector.Members()); got != agents/2 {
			t.Fatalf("agent %d sees %d members during the partition, want %d", nd.Index, got, agents/2)
		}
	}
	n.Blocked, n.ClientReach = nil, nil
	n.Clock.RunFor(3 * time.Second)
	got := make([]*[]answer, clients)
	for i := range got {
		got[i] = ask(n, election.ClientKey{MAC: ClientMAC(2000 + i)})
		n.Clock.RunFor(5 * time.Millisecond)
	}
	n.Clock.RunFor(2 * time.Second)
	for i, a := range got {
		if len(*a) != 1 {
			t.Fatalf("healed: client %d answered %d times", 2000+i, len(*a))
		}
	}
}

// attacker taps every broadcast and throws back replays, stale replays,
// tampered and forged copies, old versions and another subnet's traffic.
type attacker struct {
	n        *Network
	rng      *rand.Rand
	wrongKey *wire.Codec
	otherNet *wire.Codec // the real key, another subnet
	nonce    uint64
	injected int
}

func (a *attacker) tap(from int, msg []byte) {
	n := a.n
	to := a.rng.IntN(len(n.Nodes))
	later := n.MaxDelay + time.Duration(a.rng.Int64N(int64(2*time.Second)))
	switch a.rng.IntN(6) {
	case 0: // replay within the window
		n.Inject(to, msg, later)
	case 1: // replay long after: stale timestamp
		n.Inject(to, msg, 11*time.Second+later)
	case 2: // tampered
		b := bytes.Clone(msg)
		b[wire.HeaderLen+a.rng.IntN(len(b)-wire.HeaderLen)] ^= 0x40
		n.Inject(to, b, later)
	case 3: // old version
		b := bytes.Clone(msg)
		b[2] = 0
		n.Inject(to, b, later)
	case 4, 5: // forged claims for some client, by another agent
		var m wire.Message
		if err := a.otherNet.Decode(msg, &m); err != nil || m.Type != wire.TypeClaim {
			return
		}
		a.nonce++
		h := wire.Header{Subnet: m.Subnet, Sender: uint64(AgentID(a.rng.IntN(len(n.Nodes)))), Time: n.Clock.Now().UnixMilli(), Nonce: m.Nonce + a.nonce}
		codec := a.wrongKey
		if a.rng.IntN(2) == 0 {
			codec = a.otherNet
			h.Subnet++
		}
		n.Inject(to, codec.AppendClaim(nil, h, &m.Claim), later)
	}
	a.injected++
}

func TestForgedReplayedWrongKeyChangeNothing(t *testing.T) {
	s := Scenario{Seed: 21, Agents: 12, Clients: 3000, Rate: 1000, Config: baseConfig(),
		Images: holdsEveryFifth, HandOffImage: func(int) string { return "winpe-x64" }}
	base := run(t, s)
	var att *attacker
	s.Setup = func(n *Network) {
		wrong, _ := wire.NewCodec([]byte("not-the-site-key-at-all!"))
		right, _ := wire.NewCodec(siteKey)
		att = &attacker{n: n, rng: rand.New(rand.NewPCG(1, 2)), wrongKey: wrong, otherNet: right}
		n.Tap = att.tap
	}
	hit := run(t, s)
	for i := range base.Clients {
		b, h := base.Clients[i], hit.Clients[i]
		if fmt.Sprint(b.Servers) != fmt.Sprint(h.Servers) || !bytes.Equal(b.Payload, h.Payload) {
			t.Fatalf("client %d: answered by %v (%q) under attack, %v (%q) without", i, h.Servers, h.Payload, b.Servers, b.Payload)
		}
	}
	var sb, sh election.Stats
	for i := range base.Net.Nodes {
		x, y := base.Net.Nodes[i].Elector.Stats(), hit.Net.Nodes[i].Elector.Stats()
		sb.Accepted += x.Accepted
		sb.DroppedAuth += x.Dropped()
		sh.Accepted += y.Accepted
		sh.DroppedAuth += y.DroppedAuth
		sh.DroppedReplay += y.DroppedReplay
		sh.DroppedStale += y.DroppedStale
		sh.DroppedVersion += y.DroppedVersion
		sh.DroppedSubnet += y.DroppedSubnet
	}
	t.Logf("%d messages injected; dropped: auth %d, replay %d, stale %d, version %d, subnet %d",
		att.injected, sh.DroppedAuth, sh.DroppedReplay, sh.DroppedStale, sh.DroppedVersion, sh.DroppedSubnet)
	if sb.DroppedAuth != 0 {
		t.Fatalf("the clean run dropped %d messages", sb.DroppedAuth)
	}
	if sh.Accepted != sb.Accepted {
		t.Fatalf("accepted %d messages under attack, %d without: an injected message got in", sh.Accepted, sb.Accepted)
	}
	for name, v := range map[string]uint64{"auth": sh.DroppedAuth, "replay": sh.DroppedReplay, "stale": sh.DroppedStale, "version": sh.DroppedVersion, "subnet": sh.DroppedSubnet} {
		if v == 0 {
			t.Errorf("no %s drops counted: that attack did not run", name)
		}
	}
	if hit.ExactlyOne != len(hit.Clients) {
		t.Fatalf("exactly one responder for %d of %d under attack", hit.ExactlyOne, len(hit.Clients))
	}
}

func TestExplicitClaimPinsTheClient(t *testing.T) {
	n := build(t, 8, 0, 13)
	key := election.ClientKey{MAC: ClientMAC(77)}
	order := n.Nodes[0].Elector.Rank(nil, key, "")
	last := int(order[len(order)-1] - AgentID(0)) // the agent ranked last
	n.Nodes[last].Elector.Claim(key, "")
	n.Clock.RunFor(100 * time.Millisecond)
	got := ask(n, key)
	n.Clock.RunFor(2 * time.Second)
	if len(*got) != 1 || (*got)[0].agent != last {
		t.Fatalf("answers %v, want only agent %d which claimed the client", *got, last)
	}
}

func TestHandoffToDeadHolderTriesTheNext(t *testing.T) {
	const agents = 10
	out := run(t, Scenario{Seed: 14, Agents: agents, Clients: 300, Rate: 300,
		Images:       holdsEveryFifth, // agents 0 and 5 hold the image
		HandOffImage: func(int) string { return "winpe-x64" },
		Setup:        func(n *Network) { n.Nodes[0].Kill() }, // still in every view for 3 s
	})
	failed := uint64(0)
	for _, nd := range out.Net.Nodes {
		failed += nd.Elector.Stats().HandoffsFailed
	}
	if failed == 0 {
		t.Fatal("no handoff to the dead holder failed: the test proves nothing")
	}
	if out.ExactlyOne != len(out.Clients) {
		t.Fatalf("exactly one answer for %d of %d clients (none %d, multiple %d)", out.ExactlyOne, len(out.Clients), out.None, out.Multiple)
	}
	if out.PerAgent[0] != 0 {
		t.Fatalf("the dead agent answered %d clients", out.PerAgent[0])
	}
	// The next holder (agent 5) took every handed-off client: nobody
	// lacking the image answered.
	for i, n := range out.PerAgent {
		if i != 5 && n != 0 {
			t.Fatalf("agent %d, which lacks the image, answered %d clients", i, n)
		}
	}
	for i, cr := range out.Clients {
		if want := fmt.Sprintf("central:%d:winpe-x64", i); string(cr.Payload) != want {
			t.Fatalf("client %d answered with %q, want Central's answer %q", i, cr.Payload, want)
		}
	}
	t.Logf("%d handoffs to the dead holder went on to the next holder", failed)
}
