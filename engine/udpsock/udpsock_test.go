package udpsock_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/internal/enginetest"
	"github.com/peerboot/peerboot/engine/udpsock"
)

// TestUDPSocketPath: an engine on a UDP socket (port 4011, bound to eth0)
// reports the interface and destination address of what it reads, answers
// a unicast request with ciaddr set to the client's address and port, and
// answers a broadcast request by broadcast.
func TestUDPSocketPath(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.43.0/24")
	var s *udpsock.Socket
	var ifIndex int
	if err := srv.Do(func() (err error) {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		ifIndex = ifi.Index
		s, err = udpsock.Open(udpsock.Config{Port: 4011, Interface: "eth0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	seen := make(chan engine.Packet, 4)
	e := enginetest.Run(t, s, engine.HandlerFunc(func(req *engine.Packet, reply *engine.ReplyBuffer) bool {
		seen <- engine.Packet{SrcIP: req.SrcIP, DstIP: req.DstIP, SrcPort: req.SrcPort, DstPort: req.DstPort, IfIndex: req.IfIndex}
		return enginetest.ReplyHandler{}.Handle(req, reply)
	}))
	c := enginetest.ListenUDP(t, cli, 4011)
	mac, _ := net.ParseMAC(cli.MAC)

	// Unicast request from a configured client (OVMF style, 4011 -> 4011).
	if _, err := c.WriteToUDPAddrPort(enginetest.BOOTPRequest(0xc1, cli.Addr.As4(), [4]byte{}, mac), netip.AddrPortFrom(srv.Addr, 4011)); err != nil {
		t.Fatal(err)
	}
	got := <-seen
	want := engine.Packet{SrcIP: cli.Addr, DstIP: srv.Addr, SrcPort: 4011, DstPort: 4011, IfIndex: ifIndex}
	if got.SrcIP != want.SrcIP || got.DstIP != want.DstIP || got.SrcPort != want.SrcPort || got.DstPort != want.DstPort || got.IfIndex != want.IfIndex {
		t.Errorf("request seen as %v:%d -> %v:%d if %d, want %v:%d -> %v:%d if %d",
			got.SrcIP, got.SrcPort, got.DstIP, got.DstPort, got.IfIndex, want.SrcIP, want.SrcPort, want.DstIP, want.DstPort, want.IfIndex)
	}
	b, from := enginetest.ReadReplyFrom(t, c, srv.Addr)
	if from.Port() != 4011 || len(b) != 300 || b[0] != 2 || binary.BigEndian.Uint32(b[4:]) != 0xc1 {
		t.Errorf("unicast reply: %d bytes op %d from %v", len(b), b[0], from)
	}

	// Broadcast request without ciaddr: the reply is broadcast.
	if _, err := c.WriteToUDPAddrPort(enginetest.BOOTPRequest(0xc2, [4]byte{}, [4]byte{}, mac), netip.MustParseAddrPort("255.255.255.255:4011")); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got.DstIP != netip.MustParseAddr("255.255.255.255") {
		t.Errorf("broadcast request seen with destination %v", got.DstIP)
	}
	b, _ = enginetest.ReadReplyFrom(t, c, srv.Addr)
	if binary.BigEndian.Uint32(b[4:]) != 0xc2 || b[0] != 2 {
		t.Errorf("broadcast reply: op %d xid %#x", b[0], binary.BigEndian.Uint32(b[4:]))
	}
	// The broadcast reply also loops back to the server's own socket,
	// where the handler ignores it (a BOOTREPLY).
	waitIgnored := <-seen
	if waitIgnored.SrcIP != srv.Addr {
		t.Errorf("third datagram from %v, want the server's own broadcast", waitIgnored.SrcIP)
	}
	// A worker counts a reply after sending it, so the client may see it
	// first: wait a bounded time for the count.
	cs := e.Counters()
	for deadline := time.Now().Add(10 * time.Second); cs.Sent < 2 && time.Now().Before(deadline); cs = e.Counters() {
		runtime.Gosched()
	}
	if cs.Received != 3 || cs.Sent != 2 || cs.SendErrors != 0 {
		t.Errorf("counters = %+v, want 3 received, 2 sent", cs)
	}
}
