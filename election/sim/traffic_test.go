package sim

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election"
)

// traffic measures election messages while clients arrive at rate per
// second for dur on a subnet of agents.
type traffic struct {
	clients            int
	broadcasts         uint64 // messages sent by all agents
	perClient          float64
	sentPerAgentPerSec float64
	recvPerAgentPerSec float64
	exactlyOne         int
	p50, p99, max      time.Duration // request to answer
}

func measureTraffic(tb testing.TB, agents int, rate float64, dur time.Duration, loss float64, single bool) traffic {
	tb.Helper()
	cfg := baseConfig()
	cfg.SingleClaim = single
	n, err := Scenario{Seed: 99, Agents: agents, Config: cfg, Loss: loss}.Build()
	if err != nil {
		tb.Fatal(err)
	}
	clients := int(rate * dur.Seconds())
	gap := time.Duration(float64(time.Second) / rate)
	answers := make([]int, clients)
	delays := make([]time.Duration, 0, clients)
	sent0, recv0 := n.Sent, n.Delivered
	for i := 0; i < clients; i++ {
		n.Clock.AfterFunc(time.Duration(i)*gap, func() {
			asked := n.Clock.Now()
			n.Discover(election.ClientKey{MAC: ClientMAC(i)}, "", func(_ *Node, d election.Decision) {
				if d.Action == election.Serve {
					answers[i]++
					delays = append(delays, n.Clock.Now().Sub(asked))
				}
			})
		})
	}
	n.Clock.RunFor(dur)
	tr := traffic{clients: clients, broadcasts: n.Sent - sent0}
	secs := dur.Seconds()
	tr.perClient = float64(tr.broadcasts) / float64(clients)
	tr.sentPerAgentPerSec = float64(tr.broadcasts) / float64(agents) / secs
	tr.recvPerAgentPerSec = float64(n.Delivered-recv0) / float64(agents) / secs
	n.Clock.RunFor(2 * time.Second)
	for _, a := range answers {
		if a == 1 {
			tr.exactlyOne++
		}
	}
	slices.Sort(delays)
	if len(delays) > 0 {
		tr.p50, tr.p99, tr.max = delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1]
	}
	return tr
}

// TestMessagesPerClientAreConstant: the number of election messages per
// client does not grow with the number of agents (two claim copies, plus
// heartbeats that do not depend on clients).
func TestMessagesPerClientAreConstant(t *testing.T) {
	var perClient []float64
	for _, agents := range []int{5, 20, 80} {
		tr := measureTraffic(t, agents, 1000, 3*time.Second, 0, false)
		heartbeats := float64(agents) * 3 / float64(tr.clients) // one per agent per second
		claims := tr.perClient - heartbeats
		t.Logf("%d agents: %.2f messages per client (%.2f claims), %.0f sent and %.0f received per agent per second",
			agents, tr.perClient, claims, tr.sentPerAgentPerSec, tr.recvPerAgentPerSec)
		if claims < 1.5 || claims > 2.3 {
			t.Fatalf("%d agents: %.2f claim messages per client, want about 2", agents, claims)
		}
		if tr.exactlyOne != tr.clients {
			t.Fatalf("%d agents: exactly one answer for %d of %d clients", agents, tr.exactlyOne, tr.clients)
		}
		perClient = append(perClient, claims)
	}
	if perClient[2] > perClient[0]*1.1 {
		t.Fatalf("claims per client grow with the subnet: %v", perClient)
	}
}

// BenchmarkTraffic50Agents1000ClientsPerSec reports election messages per
// second per agent on a 50-agent subnet taking 1,000 new clients a second,
// computed in the simulation with 1% loss (virtual time: the figures do not
// depend on the machine), and how long a client waits for its answer.
func BenchmarkTraffic50Agents1000ClientsPerSec(b *testing.B) {
	for _, single := range []bool{false, true} {
		name := "claim-twice"
		if single {
			name = "claim-once"
		}
		b.Run(name, func(b *testing.B) {
			var tr traffic
			for b.Loop() {
				tr = measureTraffic(b, 50, 1000, 5*time.Second, 0.01, single)
			}
			b.ReportMetric(tr.sentPerAgentPerSec, "sent-msgs/s/agent")
			b.ReportMetric(tr.recvPerAgentPerSec, "recv-msgs/s/agent")
			b.ReportMetric(tr.perClient, "msgs/client")
			b.ReportMetric(float64(tr.exactlyOne)/float64(tr.clients), "exactly-one")
			b.ReportMetric(float64(tr.p50)/1e6, "p50-answer-ms")
			b.ReportMetric(float64(tr.p99)/1e6, "p99-answer-ms")
			b.ReportMetric(float64(tr.max)/1e6, "max-answer-ms")
		})
	}
}

func ExampleScenario() {
	out, err := Scenario{Seed: 1, Agents: 4, Clients: 1000, Rate: 500, Config: baseConfig()}.Run()
	if err != nil {
		panic(err)
	}
	fmt.Println(out.ExactlyOne, out.None, out.Multiple)
	// Output: 1000 0 0
}
