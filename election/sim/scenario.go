package sim

import (
	"fmt"
	"time"

	"github.com/peerboot/peerboot/election"
)

// Epoch is where scenario clocks start.
var Epoch = time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)

// Scenario describes agents and a stream of clients on one subnet.
type Scenario struct {
	Seed   uint64
	Agents int
	Weight func(agent int) uint8    // nil: election.DefaultWeight
	Images func(agent int) []string // nil: none
	// Load, if set, is each agent's load (active transfers, bytes/s),
	// reported before warm-up so it is in force for the first client.
	Load    func(agent int) (transfers uint32, bytesPerSec uint64)
	Loss    float64
	Clients int
	Rate    float64 // new clients per second
	// NeedImage is the image the client needs, known before the election
	// ("" = not known; Central names it to the winner, see HandOffImage).
	NeedImage func(client int) string
	// HandOffImage, if set, is Central's answer for a client: the winner
	// hands the client to a holder when it lacks the image.
	HandOffImage func(client int) string
	// Retry is how long a client waits for an answer before repeating its
	// request (PXE ROMs wait 4 s first); MaxAttempts bounds the requests.
	Retry       time.Duration
	MaxAttempts int
	// Config is the template for every agent (Agent and Weight are set
	// per agent; Key and Subnet must be set).
	Config election.Config
	// Setup, if set, runs after warm-up, before the first client.
	Setup func(n *Network)
}

// ClientResult is what happened to one client.
type ClientResult struct {
	Key      election.ClientKey
	Attempts int
	Servers  []int // agents that answered (one entry per Serve)
	// FirstAnswer is the delay from the client's first request to its
	// first answer.
	FirstAnswer time.Duration
	Payload     []byte // Central's answer as the final server saw it
	Handoffs    int
	first       time.Time
}

// Outcome summarises a run.
type Outcome struct {
	Net        *Network
	Clients    []ClientResult
	PerAgent   []int // answers per agent
	ExactlyOne int   // clients answered by exactly one agent, once
	None       int   // clients never answered
	Multiple   int   // clients answered more than once
	Elapsed    time.Duration
}

// ClientMAC is the MAC of client i in scenarios.
func ClientMAC(i int) [6]byte {
	return [6]byte{0x52, 0x54, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// AgentID is the agent id of agent i in scenarios.
func AgentID(i int) election.AgentID { return election.AgentID(1000 + i) }

// Build creates the network and agents of s and lets membership settle.
func (s Scenario) Build() (*Network, error) { return s.build(nil) }

func (s Scenario) build(onHandoff func(agent int, c election.ClientKey, payload []byte)) (*Network, error) {
	n := NewNetwork(s.Seed, Epoch)
	n.Loss = s.Loss
	for i := 0; i < s.Agents; i++ {
		cfg := s.Config
		cfg.Agent = AgentID(i)
		if s.Weight != nil {
			cfg.Weight = election.WeightOf(s.Weight(i))
		}
		if onHandoff != nil {
			agent := i
			cfg.OnHandoff = func(c election.ClientKey, _ uint64, payload []byte) { onHandoff(agent, c, payload) }
		}
		nd, err := n.Add(cfg)
		if err != nil {
			return nil, err
		}
		if s.Images != nil {
			nd.Elector.SetImages(s.Images(i))
		}
		if s.Load != nil {
			nd.Elector.SetLoad(s.Load(i))
		}
	}
	// Let membership settle: every agent sees every agent with its weight
	// in force (a new agent answers from its second load epoch on).
	for step := 0; !n.settled(); step++ {
		if step > 1000 {
			return nil, fmt.Errorf("sim: membership did not settle in %v", n.Clock.Now().Sub(Epoch))
		}
		n.Clock.RunFor(250 * time.Millisecond)
	}
	return n, nil
}

// settled reports whether every live agent sees every live agent of
// non-zero weight as ready.
func (n *Network) settled() bool {
	want := 0
	for _, nd := range n.Nodes {
		if !nd.dead && nd.Elector.Config().Weight != nil && *nd.Elector.Config().Weight > 0 {
			want++
		}
	}
	for _, nd := range n.Nodes {
		if nd.dead {
			continue
		}
		ready := 0
		for _, m := range nd.Elector.Members() {
			if m.Ready {
				ready++
			}
		}
		if ready != want {
			return false
		}
	}
	return true
}

// Run builds the network, runs the clients and waits for every retry.
func (s Scenario) Run() (*Outcome, error) {
	if s.Rate <= 0 || s.Clients <= 0 || s.Agents <= 0 {
		return nil, fmt.Errorf("sim: scenario needs agents, clients and a rate")
	}
	if s.Retry == 0 {
		s.Retry = 4 * time.Second
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = 3
	}
	out := &Outcome{Clients: make([]ClientResult, s.Clients), PerAgent: make([]int, s.Agents)}
	var n *Network
	n, err := s.build(func(agent int, c election.ClientKey, payload []byte) {
		i := ClientIndex(c.MAC)
		if i < 0 || i >= len(out.Clients) {
			return
		}
		out.Clients[i].answer(n, out, n.Nodes[agent], payload)
	})
	if err != nil {
		return nil, err
	}
	out.Net = n
	if s.Setup != nil {
		s.Setup(n)
	}
	start := n.Clock.Now()
	gap := time.Duration(float64(time.Second) / s.Rate)
	for i := 0; i < s.Clients; i++ {
		out.Clients[i].Key = election.ClientKey{MAC: ClientMAC(i)}
		n.Clock.AfterFunc(time.Duration(i)*gap, func() {
			out.Clients[i].first = n.Clock.Now()
			s.request(n, out, i)
		})
	}
	end := time.Duration(s.Clients)*gap + time.Duration(s.MaxAttempts)*s.Retry + time.Second
	n.Clock.Run(start.Add(end))
	out.Elapsed = n.Clock.Now().Sub(start)
	for i := range out.Clients {
		switch len(out.Clients[i].Servers) {
		case 0:
			out.None++
		case 1:
			out.ExactlyOne++
		default:
			out.Multiple++
		}
	}
	return out, nil
}

// ClientIndex inverts ClientMAC (-1 for other MACs).
func ClientIndex(mac [6]byte) int {
	if mac[0] != 0x52 || mac[1] != 0x54 {
		return -1
	}
	return int(mac[2])<<24 | int(mac[3])<<16 | int(mac[4])<<8 | int(mac[5])
}

func (cr *ClientResult) answer(n *Network, out *Outcome, nd *Node, payload []byte) {
	if len(cr.Servers) == 0 {
		cr.FirstAnswer = n.Clock.Now().Sub(cr.first)
	}
	cr.Servers = append(cr.Servers, nd.Index)
	cr.Payload = payload
	out.PerAgent[nd.Index]++
}

func (s Scenario) request(n *Network, out *Outcome, i int) {
	cr := &out.Clients[i]
	cr.Attempts++
	need := ""
	if s.NeedImage != nil {
		need = s.NeedImage(i)
	}
	answer := func(nd *Node, payload []byte) { cr.answer(n, out, nd, payload) }
	n.Discover(cr.Key, need, func(nd *Node, d election.Decision) {
		if d.Action != election.Serve {
			return
		}
		if s.HandOffImage == nil || d.Payload != nil {
			answer(nd, d.Payload)
			return
		}
		// The winner asked Central, which named an image.
		image := s.HandOffImage(i)
		payload := []byte(fmt.Sprintf("central:%d:%s", i, image))
		nd.Elector.RequestHandOff(cr.Key, image, payload, func(h election.Decision) {
			switch h.Action {
			case election.Serve:
				answer(nd, payload)
			case election.HandOff:
				cr.Handoffs++ // the target answers from its OnHandoff
			}
		})
	})
	n.Clock.AfterFunc(s.Retry, func() {
		if len(cr.Servers) == 0 && cr.Attempts < s.MaxAttempts {
			s.request(n, out, i)
		}
	})
}
