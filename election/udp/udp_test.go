package udp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/internal/netlab"
)

const (
	labNet     = "198.18.52.0/24"
	askPort    = 6767 // stand-in for a client's PXE broadcast
	numClients = 60
)

var siteKey = []byte("netlab-election-site-key-0123456789")

// broadcastSocket opens a UDP socket with SO_BROADCAST on port (0 = any),
// bound to device eth0 of the namespace it is opened in.
func broadcastSocket(port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr == nil {
				serr = unix.BindToDevice(int(fd), "eth0")
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

type decisionLog struct {
	mu   sync.Mutex
	byMA map[[6]byte]map[election.AgentID]election.Decision
}

func (l *decisionLog) add(mac [6]byte, self election.AgentID, d election.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byMA[mac] == nil {
		l.byMA[mac] = map[election.AgentID]election.Decision{}
	}
	l.byMA[mac][self] = d
}

// TestThreeAgentsElectOverUDP2012 runs three agents in three namespaces on
// one bridge, electing over UDP broadcast on port 2012, and a client
// namespace that broadcasts requests: exactly one agent answers each client
// and every agent names the same one.
func TestThreeAgentsElectOverUDP2012(t *testing.T) {
	lab, err := netlab.New(labNet)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	prefix := netip.MustParsePrefix(labNet)
	log := &decisionLog{byMA: map[[6]byte]map[election.AgentID]election.Decision{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var electors []*election.Elector
	var transports []*Transport
	var asks []*net.UDPConn
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("198.18.52.%d", i)
		h, err := lab.AddHost(fmt.Sprintf("agent%d", i), addr)
		if err != nil {
			t.Fatal(err)
		}
		var tr *Transport
		var ask *net.UDPConn
		if err := h.Do(func() error {
			var err error
			if tr, err = Listen(Options{Interface: "eth0"}); err != nil {
				return err
			}
			ask, err = broadcastSocket(askPort)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := tr.Destination(), netip.MustParseAddrPort("198.18.52.255:2012"); got != want {
			t.Fatalf("broadcast destination %v, want %v", got, want)
		}
		e, err := election.New(election.Config{
			Agent: election.AgentID(i), Subnet: election.SubnetID(prefix), Key: siteKey,
			HeartbeatInterval: 200 * time.Millisecond, LoadEpoch: 800 * time.Millisecond, ElectionWait: 500 * time.Millisecond,
			Addr: netip.MustParseAddr(addr),
		}, nil, tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		electors = append(electors, e)
		transports = append(transports, tr)
		asks = append(asks, ask)
		defer e.Close()
		defer ask.Close()
		wg.Add(1)
		go func() { // the agent's stand-in for its PXE listener
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, from, err := ask.ReadFromUDP(buf)
				if err != nil {
					return
				}
				if n != 6 {
					continue
				}
				var mac [6]byte
				copy(mac[:], buf[:6])
				go func() {
					d := e.Decide(ctx, election.ClientKey{MAC: mac}, "")
					log.add(mac, e.ID(), d)
					if d.Action == election.Serve {
						reply := binary.BigEndian.AppendUint64(append([]byte(nil), mac[:]...), uint64(e.ID()))
						_, _ = ask.WriteToUDP(reply, from)
					}
				}()
			}
		}()
	}

	// A stranger with the wrong key on the same segment changes nothing.
	intruderHost, err := lab.AddHost("intruder", "198.18.52.66")
	if err != nil {
		t.Fatal(err)
	}
	var intruderTr *Transport
	if err := intruderHost.Do(func() error {
		var err error
		intruderTr, err = Listen(Options{Interface: "eth0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	intruder, err := election.New(election.Config{Agent: 66, Subnet: election.SubnetID(prefix), Key: []byte("wrong-key-wrong-key-wrong"),
		HeartbeatInterval: 100 * time.Millisecond}, nil, intruderTr)
	if err != nil {
		t.Fatal(err)
	}
	if err := intruder.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()

	// Wait until every agent has seen three ready members since before
	// the last load-epoch boundary, so both sides of the nearest boundary
	// (which the boundary guard ranks with) hold all three.
	var allReady time.Time
	epoch := electors[0].Config().LoadEpoch
	for tries := 0; ; tries++ {
		ok := true
		for _, e := range electors {
			ready := 0
			for _, m := range e.Members() {
				if m.Ready {
					ready++
				}
			}
			ok = ok && ready == 3
		}
		now := time.Now()
		if !ok {
			allReady = time.Time{}
		} else if allReady.IsZero() {
			allReady = now
		}
		lastBoundary := time.UnixMilli(now.UnixMilli() / epoch.Milliseconds() * epoch.Milliseconds())
		if ok && lastBoundary.Sub(allReady) >= electors[0].Config().BoundaryGuard {
			break
		}
		if tries > 200 { // three load epochs are needed; 10 s is plenty
			t.Fatal("agents never saw three ready members for a whole boundary")
		}
		time.Sleep(50 * time.Millisecond)
	}

	client, err := lab.AddHost("client", "198.18.52.100")
	if err != nil {
		t.Fatal(err)
	}
	var cs *net.UDPConn
	if err := client.Do(func() error { var err error; cs, err = broadcastSocket(0); return err }); err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	replies := askAll(t, cs)
	answers := map[[6]byte][]uint64{}
	for mac, rs := range replies {
		for _, r := range rs {
			answers[mac] = append(answers[mac], r.agent)
		}
	}
	perAgent := map[uint64]int{}
	guarded := map[election.AgentID]uint64{}
	for _, e := range electors {
		guarded[e.ID()] = e.Stats().BoundaryGuarded
	}
	for c := 0; c < numClients; c++ {
		mac := [6]byte{0x52, 0x54, 0, 0, 0x34, byte(c)}
		got := answers[mac]
		if len(got) != 1 {
			for _, e := range electors {
				s := e.Stats()
				t.Logf("agent %d: requests %d served %d deferred %d received %d accepted %d members %d", e.ID(), s.Requests, s.Served, s.Deferred, s.Received, s.Accepted, len(e.Members()))
			}
			t.Fatalf("client %d: answers from %v, want exactly one", c, got)
		}
		perAgent[got[0]]++
		log.mu.Lock()
		ds := log.byMA[mac]
		log.mu.Unlock()
		if len(ds) != 3 {
			t.Fatalf("client %d: %d agents decided, want 3", c, len(ds))
		}
		for self, d := range ds {
			if d.Agent != election.AgentID(got[0]) {
				t.Fatalf("client %d: agent %d says %d answers (%v at rank %d), but %d did", c, self, d.Agent, d.Action, d.Rank, got[0])
			}
			// The one that answered was first in rank when it decided (the
			// ranking moves with the balances at each load epoch since),
			// or, near a load-epoch boundary where the two sides disagreed,
			// the new first that waited for the boundary guard.
			first := self == election.AgentID(got[0])
			if first != (d.Action == election.Serve) || (first && d.Rank != 0 && guarded[self] == 0) || (!first && d.Rank == 0) {
				t.Fatalf("client %d: agent %d decided %v at rank %d, but %d answered", c, self, d.Action, d.Rank, got[0])
			}
		}
	}
	if len(perAgent) < 2 {
		t.Fatalf("one agent answered everything: %v", perAgent)
	}
	for _, e := range electors {
		s := e.Stats()
		if s.DroppedAuth == 0 {
			t.Errorf("agent %d counted no wrong-key messages from the intruder", e.ID())
		}
		for _, m := range e.Members() {
			if m.Agent == 66 {
				t.Errorf("agent %d let the intruder into its view", e.ID())
			}
			if want := netip.MustParseAddr(fmt.Sprintf("198.18.52.%d", m.Agent)); m.Addr != want {
				t.Errorf("agent %d sees agent %d at %v, want %v", e.ID(), m.Agent, m.Addr, want)
			}
		}
		if s.OwnEcho == 0 {
			t.Logf("agent %d saw none of its own broadcasts looped back", e.ID())
		}
	}
	t.Logf("answers per agent: %v", perAgent)

	// Crash the busiest agent (its sockets vanish, no goodbye) and let
	// every client retry: the crashed agent's clients are answered by
	// another agent one ElectionWait later, the others keep their agent.
	victim := uint64(1)
	for a, n := range perAgent {
		if n > perAgent[victim] {
			victim = a
		}
	}
	_ = transports[victim-1].Close()
	_ = asks[victim-1].Close()
	wait := electors[0].Config().ElectionWait
	retries := askAll(t, cs)
	for c := 0; c < numClients; c++ {
		mac := [6]byte{0x52, 0x54, 0, 0, 0x34, byte(c)}
		got := retries[mac]
		if len(got) != 1 {
			t.Fatalf("retry of client %d: %d answers %v, want exactly one", c, len(got), got)
		}
		first := answers[mac][0]
		switch {
		case got[0].agent == victim:
			t.Fatalf("client %d answered by the crashed agent", c)
		case first != victim && got[0].agent != first:
			t.Fatalf("client %d moved from live agent %d to %d", c, first, got[0].agent)
		case first == victim && got[0].delay > wait+500*time.Millisecond:
			t.Fatalf("client %d of the crashed agent answered after %v (ElectionWait %v)", c, got[0].delay, wait)
		}
	}
}

type reply struct {
	agent uint64
	delay time.Duration // since the request was sent
}

// askAll broadcasts one request per client, repeats the requests still
// unanswered every 2.5 s like a PXE client (a fresh veth may drop the first
// frames), and collects the replies until every client has one, then long
// enough for any duplicate (a failover answer comes FailoverDepth waits
// late at most).
func askAll(t *testing.T, cs *net.UDPConn) map[[6]byte][]reply {
	t.Helper()
	dst := &net.UDPAddr{IP: net.IPv4(198, 18, 52, 255), Port: askPort}
	sent := map[[6]byte]time.Time{}
	out := map[[6]byte][]reply{}
	buf := make([]byte, 64)
	for attempt := 0; attempt < 4 && len(out) < numClients; attempt++ {
		for c := 0; c < numClients; c++ {
			mac := [6]byte{0x52, 0x54, 0, 0, 0x34, byte(c)}
			if len(out[mac]) > 0 {
				continue
			}
			sent[mac] = time.Now()
			if _, err := cs.WriteToUDP(mac[:], dst); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(2500 * time.Millisecond)
		extended := false
		for {
			if len(out) == numClients && !extended {
				deadline, extended = time.Now().Add(2*time.Second), true
			}
			_ = cs.SetReadDeadline(deadline)
			n, _, err := cs.ReadFromUDP(buf)
			if err != nil {
				break
			}
			if n != 14 {
				t.Fatalf("odd reply of %d bytes", n)
			}
			var mac [6]byte
			copy(mac[:], buf[:6])
			out[mac] = append(out[mac], reply{binary.BigEndian.Uint64(buf[6:14]), time.Since(sent[mac])})
		}
	}
	return out
}
