package rawsock_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/internal/enginetest"
	"github.com/peerboot/peerboot/engine/rawsock"
)

// TestRawPathDoesNotAllocate: from a request arriving in the receive ring
// to its reply leaving through the transmit ring, with the reader serving
// inline and sending its replies as a batch, nothing allocates: the
// testing.AllocsPerRun guard of the real socket path (the engine's own
// guard runs on memsock).
func TestRawPathDoesNotAllocate(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.44.0/24")
	s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts})
	if s.RingError() != nil || s.TxRingError() != nil {
		t.Fatalf("rings not in use: %v, %v", s.RingError(), s.TxRingError())
	}
	e := enginetest.RunWith(t, engine.Config{Socket: s, Handler: enginetest.ReplyHandler{}, Workers: 2, RingSize: 64, InlineMax: 32})
	fd := enginetest.ClientSocket(t, cli, 68)
	cliMAC, _ := net.ParseMAC(cli.MAC)
	req := enginetest.BOOTPRequest(0, [4]byte{}, [4]byte{}, cliMAC)
	to := &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}
	var xid uint32
	var failure error
	exchange := enginetest.Exchange(fd, req, to, &xid, &failure)
	exchange()
	if failure != nil {
		t.Fatalf("first exchange: %v (counters %+v)", failure, e.Counters())
	}
	allocs := testing.AllocsPerRun(100, exchange)
	if failure != nil {
		t.Fatalf("exchange %d: %v (counters %+v)", xid, failure, e.Counters())
	}
	if allocs != 0 {
		t.Errorf("%v allocations per request from the receive ring to the transmit ring, want 0", allocs)
	}
	if c := enginetest.WaitSent(e, uint64(xid)); c.Sent != uint64(xid) || c.SendErrors != 0 {
		t.Errorf("counters = %+v, want %d sent", c, xid)
	}
}

// TestClaimUDPPortStopsPortUnreachable: a UDP datagram to a port the raw
// socket serves must not draw ICMP port unreachable from the host's own
// stack (firmware may give up on it); a port nobody holds does.
func TestClaimUDPPortStopsPortUnreachable(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.45.0/24")
	var claim *rawsock.PortClaim
	if err := srv.Do(func() (err error) {
		claim, err = rawsock.ClaimUDPPort("eth0", 4011)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer claim.Close()
	dial := func(port uint16) *net.UDPConn {
		var c *net.UDPConn
		if err := cli.Do(func() (err error) {
			c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(srv.Addr, port)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	claimed, unclaimed := dial(4011), dial(4012)
	// The unclaimed port answers with ICMP, which a connected socket
	// reports as ECONNREFUSED: proof that the host would answer. The
	// host rate-limits ICMP errors, so a busy machine may need a retry.
	var err error
	for try := 0; try < 5 && !errors.Is(err, unix.ECONNREFUSED); try++ {
		for _, c := range []*net.UDPConn{claimed, unclaimed} {
			if _, err := c.Write([]byte("boot server request")); err != nil {
				t.Fatal(err)
			}
		}
		unclaimed.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = unclaimed.Read(make([]byte, 64))
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("unclaimed port: read error %v, want ECONNREFUSED", err)
	}
	// The claimed port's datagram went out first on the same path, so
	// an ICMP error for it would have arrived by now: one non-blocking
	// receive reports it or finds nothing.
	rc, err := claimed.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		_, _, rerr = unix.Recvfrom(int(fd), make([]byte, 64), unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		t.Fatalf("claimed port: receive error %v, want EAGAIN (nothing)", rerr)
	}
}

// TestFullRingDropsAndCounts: when the reader falls behind, the kernel
// drops what the receive ring cannot hold and the socket counts it; the
// frames already in the ring are still read.
func TestFullRingDropsAndCounts(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.46.0/24")
	s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts, RingBlockSize: 4096, RingBlocks: 4})
	fd := enginetest.ClientSocket(t, cli, 68)
	const sent = 300
	to := &unix.SockaddrInet4{Port: 67, Addr: srv.Addr.As4()}
	req := enginetest.BOOTPRequest(1, [4]byte{}, [4]byte{}, nil)
	for range sent {
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			t.Fatal(err)
		}
	}
	// Read what the ring holds: it fits far fewer than were sent.
	pkts := make([]*engine.Packet, 64)
	for i := range pkts {
		pkts[i] = new(engine.Packet)
	}
	// A frame lost elsewhere would leave ReadBatch waiting: give up then.
	stop := time.AfterFunc(10*time.Second, func() { s.Close() })
	defer stop.Stop()
	var read uint64
	for dropped := uint64(0); read+dropped < sent; dropped = s.KernelDropped() {
		n, err := s.ReadBatch(pkts)
		if err != nil {
			t.Fatal(err)
		}
		read += uint64(n)
	}
	dropped := s.KernelDropped()
	if read == 0 || dropped == 0 || read+dropped != sent {
		t.Errorf("read %d, kernel dropped %d: want both non-zero, adding up to the %d sent", read, dropped, sent)
	}
}
