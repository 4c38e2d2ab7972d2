package udpsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/engine"
)

// Config configures Open.
type Config struct {
	// Port is the UDP port to listen on (e.g. 4011), on all addresses.
	Port uint16
	// Interface, when set, binds the socket to one interface
	// (SO_BINDTODEVICE), which also lets it send to 255.255.255.255
	// without a route.
	Interface string
	// Batch is the most datagrams one read returns (default 32).
	Batch int
}

// Socket is a UDP socket implementing engine.Socket.
type Socket struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	port uint16

	msgs []ipv4.Message
	oobs [][]byte
	bufs [][][]byte
	cm   ipv4.ControlMessage

	closeOnce sync.Once
}

// Open listens on cfg.Port in the calling thread's network namespace.
func Open(cfg Config) (*Socket, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if cfg.Interface != "" {
				serr = unix.BindToDevice(int(fd), cfg.Interface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("udpsock: listen on port %d: %w", cfg.Port, err)
	}
	conn := c.(*net.UDPConn)
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("udpsock: enabling packet info: %w", err)
	}
	s := &Socket{
		conn: conn,
		pc:   pc,
		port: uint16(conn.LocalAddr().(*net.UDPAddr).Port),
		msgs: make([]ipv4.Message, cfg.Batch),
		oobs: make([][]byte, cfg.Batch),
		bufs: make([][][]byte, cfg.Batch),
	}
	for i := range s.msgs {
		s.oobs[i] = ipv4.NewControlMessage(ipv4.FlagInterface | ipv4.FlagDst)
		s.bufs[i] = make([][]byte, 1)
	}
	return s, nil
}

// Port is the UDP port the socket listens on.
func (s *Socket) Port() uint16 { return s.port }

// ReadBatch implements engine.Socket.
func (s *Socket) ReadBatch(pkts []*engine.Packet) (int, error) {
	n := min(len(pkts), len(s.msgs))
	for i := range n {
		s.bufs[i][0] = pkts[i].Buffer()
		s.msgs[i] = ipv4.Message{Buffers: s.bufs[i], OOB: s.oobs[i]}
	}
	got, err := s.pc.ReadBatch(s.msgs[:n], 0)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, engine.ErrClosed
		}
		return 0, fmt.Errorf("udpsock: read: %w", err)
	}
	for i := range got {
		m, p := &s.msgs[i], pkts[i]
		p.Payload = s.bufs[i][0][:m.N]
		if m.Flags&unix.MSG_TRUNC != 0 {
			p.Payload = p.Payload[:0]
		}
		if ua, ok := m.Addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			p.SrcIP, p.SrcPort = ap.Addr().Unmap(), ap.Port()
		}
		p.DstPort = s.port
		if err := s.cm.Parse(m.OOB[:m.NN]); err == nil {
			p.IfIndex = s.cm.IfIndex
			if d, ok := netip.AddrFromSlice(s.cm.Dst.To4()); ok {
				p.DstIP = d
			}
		}
	}
	return got, nil
}

// Send implements engine.Socket: the reply leaves from the socket's port
// through the interface the request arrived on.
func (s *Socket) Send(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	if !dst.IP.Is4() {
		return fmt.Errorf("udpsock: destination %v is not IPv4", dst.IP)
	}
	var cm *ipv4.ControlMessage
	if req.IfIndex != 0 {
		cm = &ipv4.ControlMessage{IfIndex: req.IfIndex}
	}
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.IP, dst.Port))
	if _, err := s.pc.WriteTo(reply.Payload, cm, to); err != nil {
		return fmt.Errorf("udpsock: send to %v: %w", to, err)
	}
	return nil
}

// Close implements engine.Socket.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}
