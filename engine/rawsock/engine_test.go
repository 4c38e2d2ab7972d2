package rawsock_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/rawsock"
)

// replyHandler answers every BOOTP request (op 1) with a copy turned into
// a reply (op 2), like a DHCP server would, without allocating.
type replyHandler struct{}

func (replyHandler) Handle(req *engine.Packet, reply *engine.ReplyBuffer) bool {
	if len(req.Payload) < 240 || req.Payload[0] != 1 {
		return false
	}
	reply.Payload = append(reply.Payload, req.Payload...)
	reply.Payload[0] = 2
	return true
}

func bootpRequest(xid uint32, giaddr [4]byte, chaddr net.HardwareAddr) []byte {
	m := make([]byte, 300)
	m[0], m[1], m[2] = 1, 1, 6
	binary.BigEndian.PutUint32(m[4:], xid)
	copy(m[24:28], giaddr[:])
	copy(m[28:], chaddr)
	copy(m[236:], []byte{99, 130, 83, 99, 255})
	return m
}

// TestEngineServesOverRawSocket: a raw-socket engine on srv receives a
// broadcast DHCP-shaped request sent by cli, and cli receives the reply
// frame broadcast to it; then a relayed request (giaddr set) is answered
// by unicast to the relay's port 67.
func TestEngineServesOverRawSocket(t *testing.T) {
	_, srv, cli := pair(t, "198.19.42.0/24")
	s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts})
	e, err := engine.New(engine.Config{Socket: s, Handler: replyHandler{}, Workers: 2, RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	srvMAC, _ := net.ParseMAC(srv.MAC)
	cliMAC, _ := net.ParseMAC(cli.MAC)
	var udp *net.UDPConn
	var capture *packet.Conn
	if err := cli.Do(func() (err error) {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if capture, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil); err != nil {
			return err
		}
		if udp, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 67}); err != nil {
			return err
		}
		rc, _ := udp.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = setsockoptBroadcast(int(fd)) })
		return serr
	}); err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	defer udp.Close()

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
	client68, err := listenIn(cli, 68)
	if err != nil {
		t.Fatal(err)
	}
	defer client68.Close()
	if _, err := client68.WriteToUDPAddrPort(bootpRequest(0xb1, [4]byte{}, cliMAC), netip.MustParseAddrPort("255.255.255.255:67")); err != nil {
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
	client68.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 1500)
	if n, _, err := client68.ReadFromUDPAddrPort(rb); err != nil || n != 300 || rb[0] != 2 {
		t.Errorf("client socket on port 68: %d bytes, op %d, err %v", n, rb[0], err)
	}

	// 2. A relayed request (giaddr = cli) unicast from port 67 to srv:67.
	gi := cli.Addr.As4()
	if _, err := udp.WriteToUDPAddrPort(bootpRequest(0xb2, gi, cliMAC), netip.AddrPortFrom(srv.Addr, 67)); err != nil {
		t.Fatal(err)
	}
	f = await(0xb2)
	if net.HardwareAddr(f.Eth.Dst[:]).String() != cliMAC.String() || f.IP.DstAddr() != cli.Addr || f.UDP.DstPort != 67 {
		t.Errorf("relay reply: eth dst %v ip dst %v port %d, want %v %v 67", f.Eth.Dst, f.IP.DstAddr(), f.UDP.DstPort, cliMAC, cli.Addr)
	}
	// The relay's socket gets it (after its own looped-back broadcast
	// from step 1, which it skips).
	udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := udp.ReadFromUDPAddrPort(rb)
		if err != nil {
			t.Fatalf("relay socket: %v", err)
		}
		if from.Addr() == srv.Addr {
			if from.Port() != 67 || n != 300 || rb[0] != 2 {
				t.Errorf("relay socket: %d bytes op %d from %v", n, rb[0], from)
			}
			break
		}
	}
	c := e.Counters()
	if c.Received != 2 || c.Sent != 2 || c.SendErrors != 0 || c.Malformed != 0 {
		t.Errorf("counters = %+v", c)
	}
}

func listenIn(h interface{ Do(func() error) error }, port int) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := h.Do(func() (err error) {
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port}); err != nil {
			return err
		}
		rc, _ := c.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = setsockoptBroadcast(int(fd)) })
		return serr
	})
	return c, err
}
