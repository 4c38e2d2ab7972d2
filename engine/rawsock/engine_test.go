package rawsock_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

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
// reader serving inline with batched sends). Every reply's UDP checksum
// must verify, or, where the frame is still marked for checksum offload
// (the transmit ring asks for it), verify once completed; with the
// server's device unable to offload, the kernel completes it.
func TestEngineServesOverRawSocket(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.42.0/24")
	for _, tc := range []struct {
		name      string
		sock      rawsock.Config
		inline    int
		noOffload bool // turn off the server device's transmit checksum offload
	}{
		{"rings/workers", rawsock.Config{}, 0, false},
		{"rings/inline", rawsock.Config{}, 32, false},
		{"rx-ring+sendmmsg/inline", rawsock.Config{NoTxRing: true}, 32, false},
		{"rx-ring+write/workers", rawsock.Config{NoTxRing: true}, 0, false},
		{"recvmmsg/inline", rawsock.Config{NoRing: true}, 32, false},
		{"rings/inline/device-without-checksum-offload", rawsock.Config{}, 32, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noOffload {
				setTxChecksumOffload(t, srv, "eth0", false)
				t.Cleanup(func() { setTxChecksumOffload(t, srv, "eth0", true) })
			}
			tc.sock.Interface, tc.sock.Ports = "eth0", servedPorts
			s := openIn(t, srv, tc.sock)
			if tc.sock.NoRing != (s.RingError() != nil) || (tc.sock.NoRing || tc.sock.NoTxRing) != (s.TxRingError() != nil) {
				t.Fatalf("ring errors: receive %v, transmit %v", s.RingError(), s.TxRingError())
			}
			e := enginetest.RunWith(t, engine.Config{Socket: s, Handler: enginetest.ReplyHandler{}, Workers: 2, RingSize: 64, InlineMax: tc.inline})
			serveOverRawSocket(t, srv, cli, e, tc.noOffload)
		})
	}
}

func serveOverRawSocket(t *testing.T, srv, cli *netlab.Host, e *engine.Engine, wantComplete bool) {
	srvMAC, _ := net.ParseMAC(srv.MAC)
	cliMAC, _ := net.ParseMAC(cli.MAC)
	capture := captureSocket(t, cli)
	udp := enginetest.ListenUDP(t, cli, 67)

	// await reads frames on cli until a UDP reply with xid arrives.
	await := func(xid uint32) *frame.Frame {
		t.Helper()
		buf := make([]byte, 2048)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, status, err := readWithStatus(capture, buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil {
				t.Fatalf("waiting for reply %#x: %v (counters %+v)", xid, err, e.Counters())
			}
			f := new(frame.Frame)
			if frame.DecodeUDP4(buf[:n], f) != nil || len(f.Payload) < 240 {
				continue
			}
			if f.Payload[0] == 2 && binary.BigEndian.Uint32(f.Payload[4:]) == xid {
				offloaded := status&unix.TP_STATUS_CSUMNOTREADY != 0
				switch {
				case offloaded && wantComplete:
					t.Errorf("reply %#x still waits for checksum offload on a device without it", xid)
				case offloaded && !completedChecksumValid(buf[:n]):
					t.Errorf("reply %#x is marked for checksum offload but its checksum field %#04x is not the pseudo-header sum", xid, f.UDP.Checksum)
				case !offloaded && (!f.UDPChecksumValid() || f.UDP.Checksum == 0):
					t.Errorf("reply %#x has a bad UDP checksum %#04x", xid, f.UDP.Checksum)
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

// captureSocket is an AF_PACKET socket on h's eth0 receiving every IPv4
// frame, with PACKET_AUXDATA so each frame's status says whether its
// checksum is still to be completed by offload (TP_STATUS_CSUMNOTREADY),
// and a 100 ms receive timeout.
func captureSocket(t *testing.T, h *netlab.Host) int {
	t.Helper()
	fd := -1
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	}); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("capture socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// readWithStatus reads one frame and its tpacket_auxdata.tp_status.
func readWithStatus(fd int, buf []byte) (n int, status uint32, err error) {
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return 0, 0, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, 0, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
			return n, binary.NativeEndian.Uint32(m.Data), nil
		}
	}
	return 0, 0, errors.New("no PACKET_AUXDATA with the frame")
}

// completedChecksumValid completes an offloaded UDP checksum as a NIC
// does (the checksum of the datagram, whose checksum field holds the
// pseudo-header sum) and reports whether the result verifies.
func completedChecksumValid(b []byte) bool {
	b = append([]byte(nil), b...)
	udp := b[frame.HeaderLen-frame.UDPHeaderLen:]
	sum := frame.Checksum(udp)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	var f frame.Frame
	return frame.DecodeUDP4(b, &f) == nil && f.UDPChecksumValid()
}

// setTxChecksumOffload turns the transmit checksum offload of h's device
// on or off (ethtool -K DEV tx on|off, through the ETHTOOL_STXCSUM ioctl).
func setTxChecksumOffload(t *testing.T, h *netlab.Host, dev string, on bool) {
	t.Helper()
	const ethtoolSTxCsum = 0x17 // ETHTOOL_STXCSUM
	value := struct{ cmd, data uint32 }{cmd: ethtoolSTxCsum}
	if on {
		value.data = 1
	}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&value)
	if err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
			return e
		}
		return nil
	}); err != nil {
		t.Fatalf("setting transmit checksum offload of %s to %v: %v", dev, on, err)
	}
}
