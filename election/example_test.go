package election_test

import (
	"fmt"
	"time"

	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/election/sim"
)

// Three agents on a simulated subnet: every one of them runs the election
// for the same client request, and exactly one serves.
func Example() {
	n, err := sim.Scenario{Seed: 1, Agents: 3, Config: election.Config{
		Key: []byte("example-site-key-0123456789"), Subnet: 1,
	}}.Build()
	if err != nil {
		panic(err)
	}
	client := election.ClientKey{MAC: [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}}
	first := n.Nodes[0].Elector.Rank(nil, client, "")[0]
	serving := 0
	n.Discover(client, "", func(nd *sim.Node, d election.Decision) {
		if d.Action == election.Serve {
			serving++
			fmt.Println("first in rank serves:", nd.Elector.ID() == first)
		}
	})
	n.Clock.RunFor(time.Second)
	fmt.Println("agents serving:", serving)
	// Output:
	// first in rank serves: true
	// agents serving: 1
}
