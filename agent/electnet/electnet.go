package electnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Transport is a UDP broadcast socket on one interface.
type Transport struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
}

// Broadcast returns the directed broadcast address of a prefix.
func Broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}

// Listen opens the election socket on iface, port, sending to the
// broadcast address of subnet.
func Listen(iface string, subnet netip.Prefix, port int) (*Transport, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if iface != "" {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("election port %d on %s: %w", port, iface, err)
	}
	bc := Broadcast(subnet)
	return &Transport{conn: pc.(*net.UDPConn), dst: &net.UDPAddr{IP: bc.AsSlice(), Port: port}}, nil
}

// Send broadcasts one message to the subnet.
func (t *Transport) Send(msg []byte) error {
	_, err := t.conn.WriteToUDP(msg, t.dst)
	return err
}

// Recv blocks for one datagram; after Close it returns an error wrapping
// net.ErrClosed.
func (t *Transport) Recv(buf []byte) (int, error) {
	n, _, err := t.conn.ReadFromUDP(buf)
	return n, err
}

// Close closes the socket.
func (t *Transport) Close() error { return t.conn.Close() }
