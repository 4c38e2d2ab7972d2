package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/peerboot/peerboot/election"
)

// Network is a simulated broadcast subnet on a virtual clock.
type Network struct {
	Clock *Clock
	// Loss is the probability that one copy of a broadcast (to one
	// receiver) is lost; client requests suffer it too.
	Loss float64
	// MinDelay and MaxDelay bound each copy's delivery delay (uniform), so
	// copies to different receivers, and successive messages, reorder.
	MinDelay, MaxDelay time.Duration
	// Blocked, if set, says whether from cannot reach to (a partition).
	Blocked func(from, to int) bool
	// ClientReach, if set, says whether a client's request reaches nd.
	ClientReach func(c election.ClientKey, nd *Node) bool
	// Tap, if set, sees every broadcast an agent sends (before loss).
	Tap func(from int, msg []byte)

	Nodes          []*Node
	Sent, Lost     uint64 // broadcasts sent; copies lost
	Delivered      uint64 // copies delivered
	rng            *rand.Rand
	ClientRequests uint64
}

// Node is one agent on the network.
type Node struct {
	Index    int
	Elector  *election.Elector
	net      *Network
	dead     bool
	Sent     uint64 // broadcasts sent
	Received uint64 // copies delivered to it
	// Skew is how far this agent's clock reads ahead of the network's
	// (negative: behind), as NTP leaves it.
	Skew time.Duration
}

// NewNetwork returns an empty network whose clock starts at start,
// with randomness from seed (runs are reproducible).
func NewNetwork(seed uint64, start time.Time) *Network {
	return &Network{
		Clock:    NewClock(start),
		MinDelay: 100 * time.Microsecond,
		MaxDelay: 5 * time.Millisecond,
		rng:      rand.New(rand.NewPCG(seed, seed^0x5eed)),
	}
}

// Add creates an agent with cfg (its clock and transport are the
// network's) and starts it.
func (n *Network) Add(cfg election.Config) (*Node, error) {
	node := &Node{Index: len(n.Nodes), net: n}
	e, err := election.New(cfg, nodeClock{node}, nodeTransport{node})
	if err != nil {
		return nil, fmt.Errorf("sim: agent %d: %w", node.Index, err)
	}
	node.Elector = e
	n.Nodes = append(n.Nodes, node)
	if err := e.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("sim: start agent %d: %w", node.Index, err)
	}
	return node, nil
}

// Kill stops the agent dead: it sends and receives nothing more and its
// timers never fire (no goodbye heartbeat).
func (nd *Node) Kill() { nd.dead = true }

// Dead reports whether the agent was killed.
func (nd *Node) Dead() bool { return nd.dead }

func (nd *Node) deliver(msg []byte) {
	if nd.dead {
		return
	}
	nd.Received++
	nd.net.Delivered++
	nd.Elector.Receive(msg)
}

func (n *Network) delay() time.Duration {
	span := n.MaxDelay - n.MinDelay
	if span <= 0 {
		return n.MinDelay
	}
	return n.MinDelay + time.Duration(n.rng.Int64N(int64(span)))
}

func (n *Network) lost() bool {
	if n.Loss > 0 && n.rng.Float64() < n.Loss {
		n.Lost++
		return true
	}
	return false
}

// broadcast sends msg from node index from to every other live node.
func (n *Network) broadcast(from int, msg []byte) {
	n.Sent++
	if n.Tap != nil {
		n.Tap(from, msg)
	}
	for _, to := range n.Nodes {
		if to.Index == from || to.dead || (n.Blocked != nil && n.Blocked(from, to.Index)) || n.lost() {
			continue
		}
		n.Clock.delivery(n.Clock.now+int64(n.delay()), to, msg)
	}
}

// Inject delivers a raw datagram to node to after delay (an attacker, or
// a replay of a captured message).
func (n *Network) Inject(to int, msg []byte, delay time.Duration) {
	n.Clock.delivery(n.Clock.now+int64(delay), n.Nodes[to], append([]byte(nil), msg...))
}

// Discover simulates a client broadcasting one request: every live agent
// that hears it (subject to loss and delay) runs the election, and
// onDecision receives each agent's decision when it is made.
func (n *Network) Discover(c election.ClientKey, needImage string, onDecision func(nd *Node, d election.Decision)) {
	n.ClientRequests++
	for _, nd := range n.Nodes {
		if nd.dead || (n.ClientReach != nil && !n.ClientReach(c, nd)) || n.lost() {
			continue
		}
		n.Clock.AfterFunc(n.delay(), func() {
			if nd.dead {
				return
			}
			nd.Elector.Request(c, needImage, func(d election.Decision) {
				if !nd.dead {
					onDecision(nd, d)
				}
			})
		})
	}
}

type nodeClock struct{ nd *Node }

func (c nodeClock) Now() time.Time { return c.nd.net.Clock.Now().Add(c.nd.Skew) }

func (c nodeClock) AfterFunc(d time.Duration, f func()) election.Timer {
	nd := c.nd
	return nd.net.Clock.AfterFunc(d, func() {
		if !nd.dead {
			f()
		}
	})
}

type nodeTransport struct{ nd *Node }

func (t nodeTransport) Send(msg []byte) error {
	if t.nd.dead {
		return nil
	}
	t.nd.Sent++
	t.nd.net.broadcast(t.nd.Index, append([]byte(nil), msg...))
	return nil
}
