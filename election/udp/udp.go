package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultPort is the election port (CommsPort).
const DefaultPort = 2012

// Options configure a Transport.
type Options struct {
	// Interface is the network interface to bind to (required).
	Interface string
	// Port is the UDP port; 0 means DefaultPort.
	Port int
	// Broadcast is where messages go; the zero value means the directed
	// broadcast address of the interface's first IPv4 prefix, or
	// 255.255.255.255 if it has none.
	Broadcast netip.Addr
}

// Transport sends and receives election datagrams on one interface. It
// implements election.Transport and election.Receiver.
type Transport struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
}

// Listen opens the election socket on opts.Interface.
func Listen(opts Options) (*Transport, error) {
	if opts.Interface == "" {
		return nil, errors.New("udp: no interface given")
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("udp: port %d out of range", opts.Port)
	}
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("udp: interface %q: %w", opts.Interface, err)
	}
	bcast := opts.Broadcast
	if !bcast.IsValid() {
		bcast = directedBroadcast(ifi)
	}
	if !bcast.Is4() {
		return nil, fmt.Errorf("udp: broadcast address %v is not IPv4", bcast)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1); serr != nil {
					return
				}
			}
			serr = unix.BindToDevice(int(fd), ifi.Name)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", opts.Port))
	if err != nil {
		return nil, fmt.Errorf("udp: listen on %s port %d: %w", ifi.Name, opts.Port, err)
	}
	return &Transport{conn: pc.(*net.UDPConn), dst: net.UDPAddrFromAddrPort(netip.AddrPortFrom(bcast, uint16(opts.Port)))}, nil
}

func directedBroadcast(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP.To4())
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			ones, _ := ipn.Mask.Size()
			if ones >= 31 {
				continue
			}
			p := netip.PrefixFrom(ip, ones).Masked()
			b := p.Addr().As4()
			host := uint32(1)<<(32-ones) - 1
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	return netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// Send broadcasts msg to the subnet.
func (t *Transport) Send(msg []byte) error {
	if _, err := t.conn.WriteToUDP(msg, t.dst); err != nil {
		return fmt.Errorf("udp: send to %v: %w", t.dst, err)
	}
	return nil
}

// Recv reads one datagram into buf. After Close it returns an error
// wrapping net.ErrClosed.
func (t *Transport) Recv(buf []byte) (int, error) {
	n, _, err := t.conn.ReadFromUDP(buf)
	if err != nil {
		return 0, fmt.Errorf("udp: receive: %w", err)
	}
	return n, nil
}

// Destination is the broadcast address and port messages are sent to.
func (t *Transport) Destination() netip.AddrPort { return t.dst.AddrPort() }

// LocalPort is the bound port.
func (t *Transport) LocalPort() int { return t.conn.LocalAddr().(*net.UDPAddr).Port }

// Close closes the socket.
func (t *Transport) Close() error { return t.conn.Close() }
