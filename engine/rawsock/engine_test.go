package rawsock_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/internal/enginetest"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/internal/netlab"
)

// TestEngineServesOverRawSocket: a raw-socket engine on srv receives a
// broadcast DHCP-shaped request sent by cli, and cli receives the reply
// frame broadcast to it; then a relayed request (giaddr set) is answered
// by unicast to the relay's port 67.
//
// It runs for each way of receiving (receive ring, recvmmsg), sending
// (transmit ring, sendmmsg and write) and dispatching (workers only, the
// reader serving inline with batched sends).
func TestEngineServesOverRawSocket(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.42.0/24")
	for _, tc := range []struct {
		name   string
		sock   rawsock.Config
		inline int
	}{
		{"rings/workers", rawsock.Config{}, 0},
		{"rings/inline", rawsock.Config{}, 32},
		{"rx-ring+sendmmsg/inline", rawsock.Config{NoTxRing: true}, 32},
		{"rx-ring+write/workers", rawsock.Config{NoTxRing: true}, 0},
		{"recvmmsg/inline", rawsock.Config{NoRing: true}, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sock.Interface, tc.sock.Ports = "eth0", servedPorts
			s := openIn(t, srv, tc.sock)
			if tc.sock.NoRing != (s.RingError() != nil) || (tc.sock.NoRing || tc.sock.NoTxRing) != (s.TxRingError() != nil) {
				t.Fatalf("ring errors: receive %v, transmit %v", s.RingError(), s.TxRingError())
			}
			e := enginetest.RunWith(t, engine.Config{Socket: s, Handler: enginetest.ReplyHandler{}, Workers: 2, RingSize: 64, InlineMax: tc.inline})
			serveOverRawSocket(t, srv, cli, e)
		})
	}
}

func serveOverRawSocket(t *testing.T, srv, cli *netlab.Host, e *engine.Engine) {

	srvMAC, _ := net.ParseMAC(srv.MAC)
	cliMAC, _ := net.ParseMAC(cli.MAC)
	var capture *packet.Conn
	if err := cli.Do(func() (err error) {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		capture, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	udp := enginetest.ListenUDP(t, cli, 67)

	// await reads frames on cli until a UDP reply with xid arrives.
	await := func(xid uint32) *frame.Frame {
		t.Helper()
		buf := make([]byte, 2048)
		deadline := time.Now().Add(10 * time.Second)
		capture.SetReadDeadline(deadline)
		for time.Now().Before(deadline) {
			n, _, err := capture.ReadFrom(buf)
			if err != nil {
				t.Fatalf("waiting for reply %#x: %v (counters %+v)", xid, err, e.Counters())
			}
			f := new(frame.Frame)
			if frame.DecodeUDP4(buf[:n], f) != nil || len(f.Payload) < 240 {
				continue
			}
			if f.Payload[0] == 2 && binary.BigEndian.Uint32(f.Payload[4:]) == xid {
				if !f.UDPChecksumValid() {
					t.Errorf("reply %#x has a bad UDP checksum", xid)
				}
				return f
			}
		}
		t.Fatalf("no reply %#x", xid)
		return nil
	}

	// 1. Broadcast DISCOVER-shaped request from 0.0.0.0-like client port 68.
	client68 := enginetest.ListenUDP(t, cli, 68)
	if _, err := client68.WriteToUDPAddrPort(enginetest.BOOTPRequest(0xb1, [4]byte{}, [4]byte{}, cliMAC), netip.MustParseAddrPort("255.255.255.255:67")); err != nil {
		t.Fatal(err)
	}
	f := await(0xb1)
	if f.Eth.Dst != frame.Broadcast || net.HardwareAddr(f.Eth.Src[:]).String() != srvMAC.String() ||
		f.IP.DstAddr() != netip.MustParseAddr("255.255.255.255") || f.IP.SrcAddr() != srv.Addr ||
		f.UDP.SrcPort != 67 || f.UDP.DstPort != 68 {
		t.Errorf("broadcast reply: eth %v->%v ip %v->%v udp %d->%d",
			f.Eth.Src, f.Eth.Dst, f.IP.SrcAddr(), f.IP.DstAddr(), f.UDP.SrcPort, f.UDP.DstPort)
	}
	// The client's own UDP socket receives it too.
	if b, from := enginetest.ReadReplyFrom(t, client68, srv.Addr); len(b) != 300 || b[0] != 2 || from.Port() != 67 {
		t.Errorf("client socket on port 68: %d bytes, op %d, from %v", len(b), b[0], from)
	}

	// 2. A relayed request (giaddr = cli) unicast from port 67 to srv:67.
	gi := cli.Addr.As4()
	if _, err := udp.WriteToUDPAddrPort(enginetest.BOOTPRequest(0xb2, [4]byte{}, gi, cliMAC), netip.AddrPortFrom(srv.Addr, 67)); err != nil {
		t.Fatal(err)
	}
	f = await(0xb2)
	if net.HardwareAddr(f.Eth.Dst[:]).String() != cliMAC.String() || f.IP.DstAddr() != cli.Addr || f.UDP.DstPort != 67 {
		t.Errorf("relay reply: eth dst %v ip dst %v port %d, want %v %v 67", f.Eth.Dst, f.IP.DstAddr(), f.UDP.DstPort, cliMAC, cli.Addr)
	}
	// The relay's socket gets it (skipping its own looped broadcast).
	if b, from := enginetest.ReadReplyFrom(t, udp, srv.Addr); len(b) != 300 || b[0] != 2 || from.Port() != 67 {
		t.Errorf("relay socket: %d bytes op %d from %v", len(b), b[0], from)
	}
	// The engine counts a reply after it left, so the client may see it
	// first: wait a bounded time for the count.
	c := e.Counters()
	for deadline := time.Now().Add(10 * time.Second); c.Sent < 2 && time.Now().Before(deadline); c = e.Counters() {
		runtime.Gosched()
	}
	if c.Received != 2 || c.Sent != 2 || c.SendErrors != 0 || c.Malformed != 0 {
		t.Errorf("counters = %+v", c)
	}
}
