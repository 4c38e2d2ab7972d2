package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/election/wire"
	"github.com/peerboot/peerboot/internal/netlab"
)

// udpRogue is a rogue participant on a real subnet: from its own
// namespace it broadcasts weight-99 heartbeats and claims for the given
// client MACs on UDP 2012, every 100 ms, until stop closes.
func udpRogue(t *testing.T, h *netlab.Host, prefix netip.Prefix, key []byte, macs [][6]byte, stop <-chan struct{}) <-chan int {
	t.Helper()
	codec, err := wire.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	if err := h.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: h.Addr.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b := prefix.Addr().As4()
	b[3] = 255
	bcast := &net.UDPAddr{IP: net.IP(b[:]), Port: 2012}
	sent := make(chan int, 1)
	go func() {
		defer conn.Close()
		n := 0
		nonce := uint64(time.Now().UnixMicro())
		hdr := func() wire.Header {
			nonce++
			return wire.Header{Subnet: election.SubnetID(prefix), Sender: 0xbad0bad, Time: time.Now().UnixMilli(), Nonce: nonce}
		}
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			hb := wire.Heartbeat{IntervalMS: 250, EpochMS: 1000, Now: wire.Load{Weight: 99}, Next: wire.Load{Weight: 99}}
			if msg, err := codec.AppendHeartbeat(nil, hdr(), &hb); err == nil {
				conn.WriteToUDP(msg, bcast)
				n++
			}
			for _, mac := range macs {
				cl := wire.Claim{Client: wire.Client{MAC: mac}, HoldMS: 600_000}
				conn.WriteToUDP(codec.AppendClaim(nil, hdr(), &cl), bcast)
				n++
			}
			select {
			case <-stop:
				sent <- n
				return
			case <-tk.C:
			}
		}
	}()
	return sent
}

// runRealRogue starts Central and two real agents, runs a rogue with key,
// and boots clients; it returns how many booted and the agents' election
// drop counters.
func runRealRogue(t *testing.T, subnet string, key func(s *lab.Site) []byte, clients int) (booted int, dropped float64) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Fatalf("needs root (network namespaces): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := lab.Start(ctx, lab.Options{Exe: peerboot(t), Subnet: subnet, Agents: 2, ImageBytes: 64 << 10, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rh, err := s.Lab.AddHost("rogue", netip.MustParsePrefix(subnet).Addr().Next().Next().Next().Next().Next().String()) // .5
	if err != nil {
		t.Fatal(err)
	}
	var macs [][6]byte
	for i := 1; i <= clients; i++ {
		var m [6]byte
		copy(m[:], s.NewClient(i).MAC)
		macs = append(macs, m)
	}
	stop := make(chan struct{})
	sent := udpRogue(t, rh, s.Lab.Prefix, key(s), macs, stop)
	// Wait until every agent has either dropped the rogue's messages or
	// taken it into its view, and (accepted) two load epochs have passed
	// so its weight is in force.
	waitFor(t, 30*time.Second, "the agents hearing the rogue", func() (bool, string) {
		var state []float64
		all := true
		for i := range s.Agents {
			m, _ := s.Metrics(ctx, i)
			d, members := metricValue(m, "peerboot_election_dropped_total"), metricValue(m, "peerboot_election_members")
			state = append(state, d, members)
			all = all && (d >= 10 || members >= 3)
		}
		return all, fmt.Sprint("dropped, members per agent: ", state)
	})
	epochs := time.Now().Add(2500 * time.Millisecond)
	waitFor(t, 5*time.Second, "two load epochs", func() (bool, string) { return time.Now().After(epochs), "" })
	for i := 1; i <= clients; i++ {
		c := s.NewClient(i)
		c.Tries, c.Wait = 3, 2*time.Second
		if res, err := s.Boot(ctx, c); err == nil && res.Bytes > 0 {
			booted++
		}
	}
	close(stop)
	n := <-sent
	for i := range s.Agents {
		m, _ := s.Metrics(ctx, i)
		dropped += metricValue(m, "peerboot_election_dropped_total")
	}
	t.Logf("rogue sent %d messages; the agents dropped %.0f election messages; %d/%d clients booted", n, dropped, booted, clients)
	return booted, dropped
}

// TestRealAgentsIgnoreWrongKeyRogue: two real agents on UDP 2012 and a
// rogue without the site key that announces weight 99 and claims every
// client ten times a second: every client boots, and the agents count the
// rogue's messages as dropped.
func TestRealAgentsIgnoreWrongKeyRogue(t *testing.T) {
	const clients = 8
	booted, dropped := runRealRogue(t, "198.18.123.0/24", func(*lab.Site) []byte { return []byte("a-guess-at-the-site-key-000000000") }, clients)
	if booted != clients {
		t.Fatalf("%d of %d clients booted with a wrong-key rogue on the segment", booted, clients)
	}
	if dropped == 0 {
		t.Fatal("the agents dropped no election message: the rogue did not run")
	}
}

// siteKeyOf is the election key the agents of a lab derive from its
// enrollment key (the default when election-key is not set).
func siteKeyOf(s *lab.Site) []byte {
	sum := sha256.Sum256([]byte("peerboot election key\x00" + s.EnrollKey))
	return []byte(hex.EncodeToString(sum[:]))
}

// TestRealAgentsDropReplayedElectionMessages: an attacker on the segment
// records the agents' own election broadcasts (heartbeats and claims of a
// first round of boots) and replays every one of them, over and over,
// while more clients boot. Each replay is dropped by the agent that did not
// send it (stale or replayed), and every client boots.
func TestRealAgentsDropReplayedElectionMessages(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Fatalf("needs root (network namespaces): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := lab.Start(ctx, lab.Options{Exe: peerboot(t), Subnet: "198.18.127.0/24", Agents: 2, ImageBytes: 64 << 10, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	spy, err := s.Lab.AddHost("spy", "198.18.127.5")
	if err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	if err := spy.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 2012})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Record while the first clients boot (claims) and heartbeats flow.
	var recorded [][]byte
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			recorded = append(recorded, append([]byte(nil), buf[:n]...))
		}
	}()
	for i := 1; i <= 3; i++ {
		if res, err := s.Boot(ctx, s.NewClient(i)); err != nil || res.Bytes == 0 {
			t.Fatalf("client %d before the replay: %v", i, err)
		}
	}
	conn.SetReadDeadline(time.Now())
	<-recDone
	if len(recorded) < 5 {
		t.Fatalf("recorded only %d election messages", len(recorded))
	}
	dropsBefore := 0.0
	for i := range s.Agents {
		m, _ := s.Metrics(ctx, i)
		dropsBefore += metricValue(m, "peerboot_election_dropped_total")
	}
	// Replay everything, again and again, while three more clients boot.
	stop := make(chan struct{})
	replayed := make(chan int, 1)
	bcast := &net.UDPAddr{IP: net.IPv4(198, 18, 127, 255), Port: 2012}
	go func() {
		n := 0
		for {
			for _, m := range recorded {
				if _, err := conn.WriteToUDP(m, bcast); err == nil {
					n++
				}
			}
			select {
			case <-stop:
				replayed <- n
				return
			case <-time.After(20 * time.Millisecond): // pacing the replay rounds
			}
		}
	}()
	booted := 0
	for i := 4; i <= 6; i++ {
		if res, err := s.Boot(ctx, s.NewClient(i)); err == nil && res.Bytes > 0 {
			booted++
		}
	}
	close(stop)
	n := <-replayed
	drops := -dropsBefore
	for i := range s.Agents {
		m, _ := s.Metrics(ctx, i)
		drops += metricValue(m, "peerboot_election_dropped_total")
	}
	t.Logf("recorded %d election messages, replayed %d; the agents dropped %.0f; %d/3 clients booted meanwhile", len(recorded), n, drops, booted)
	if booted != 3 {
		t.Errorf("%d of 3 clients booted during the replay", booted)
	}
	if drops < 0.9*float64(n) {
		t.Errorf("%d replays, %.0f dropped: replays got in", n, drops)
	}
}
