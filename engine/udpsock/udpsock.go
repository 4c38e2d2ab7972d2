package udpsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/peerboot/peerboot/engine/internal/pollcall"
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
	// Batch is the most datagrams one read returns, and the most replies
	// one batch send carries (default 32).
	Batch int
}

// oobLen is the room for one IP_PKTINFO control message.
var oobLen = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// msgBufs are the preallocated message headers, addresses and control
// buffers of one batch of datagrams.
type msgBufs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	oob   []byte // oobLen bytes per message
}

func newMsgBufs(n int) msgBufs {
	b := msgBufs{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		oob:   make([]byte, n*oobLen),
	}
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// Socket is a UDP socket implementing engine.Socket and
// engine.BatchSender.
type Socket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	port uint16

	// read state, used by the one reader goroutine
	rx     msgBufs
	vlen   int
	got    int
	rerr   error
	readFn func(fd uintptr) bool

	// Send (workers): one message under a lock
	sendMu sync.Mutex
	send   msgBufs
	sendFn func(fd uintptr) bool
	serr   error

	// Queue and Flush (the reader): a batch sent with sendmmsg
	tx     msgBufs
	txN    int
	txSent int
	flushN int
	txGot  int
	txFn   func(fd uintptr) bool

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
			for _, o := range [][3]int{
				{unix.SOL_SOCKET, unix.SO_BROADCAST, 1},
				{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
			} {
				if serr = unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); serr != nil {
					return
				}
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
	// Packet info (IP_PKTINFO on Linux): the interface and destination
	// address of every datagram. The batch reads and writes below parse and
	// build it themselves, because x/net/ipv4's ReadBatch/WriteBatch and
	// ControlMessage allocate per message.
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("udpsock: packet info on port %d: %w", cfg.Port, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("udpsock: %w", err)
	}
	s := &Socket{
		conn: conn,
		rc:   rc,
		port: uint16(conn.LocalAddr().(*net.UDPAddr).Port),
		rx:   newMsgBufs(cfg.Batch),
		send: newMsgBufs(1),
		tx:   newMsgBufs(cfg.Batch),
	}
	s.readFn, s.sendFn, s.txFn = s.recv, s.sendOne, s.sendBatch
	return s, nil
}

// Port is the UDP port the socket listens on.
func (s *Socket) Port() uint16 { return s.port }

// ReadBatch implements engine.Socket: one recvmmsg into the packets'
// buffers, with each datagram's source address and packet info (the
// interface it arrived on and the address it was sent to).
func (s *Socket) ReadBatch(pkts []*engine.Packet) (int, error) {
	n := min(len(pkts), len(s.rx.hdrs))
	for i := range n {
		buf := pkts[i].Buffer()
		s.rx.iovs[i].Base = &buf[0]
		s.rx.iovs[i].SetLen(len(buf))
		h := &s.rx.hdrs[i]
		h.Hdr.Name = (*byte)(unsafe.Pointer(&s.rx.names[i]))
		h.Hdr.Namelen = unix.SizeofSockaddrInet4
		h.Hdr.Control = &s.rx.oob[i*oobLen]
		h.Hdr.SetControllen(oobLen)
		h.Hdr.Flags = 0
		h.Len = 0
	}
	s.vlen, s.got, s.rerr = n, 0, nil
	if err := s.rc.Read(s.readFn); err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return 0, engine.ErrClosed
		}
		return 0, fmt.Errorf("udpsock: read: %w", err)
	}
	if s.rerr != nil {
		return 0, fmt.Errorf("udpsock: recvmmsg: %w", s.rerr)
	}
	for i := range s.got {
		h, p := &s.rx.hdrs[i], pkts[i]
		l := int(h.Len)
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 || l > len(p.Buffer()) {
			l = 0 // truncated: the handler drops it as malformed
		}
		p.Payload = p.Buffer()[:l]
		name := &s.rx.names[i]
		p.SrcIP, p.SrcPort = netip.AddrFrom4(name.Addr), ntohs(name.Port)
		p.DstPort = s.port
		p.IfIndex, p.DstIP = pktinfo(s.rx.oob[i*oobLen : i*oobLen+int(h.Hdr.Controllen)])
	}
	return s.got, nil
}

// pktinfo finds the IP_PKTINFO control message in oob.
func pktinfo(oob []byte) (ifIndex int, dst netip.Addr) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0, netip.Addr{}
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && l >= unix.CmsgLen(unix.SizeofInet4Pktinfo) {
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return int(pi.Ifindex), netip.AddrFrom4(pi.Addr)
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0, netip.Addr{}
}

func ntohs(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return uint16(b[0])<<8 | uint16(b[1])
}

func htons(v uint16) uint16 {
	var r uint16
	b := (*[2]byte)(unsafe.Pointer(&r))
	b[0], b[1] = byte(v>>8), byte(v)
	return r
}

// recv is called by the runtime poller; false means "wait for readiness".
func (s *Socket) recv(fd uintptr) bool {
	r, wait, e := pollcall.Do(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.rx.hdrs[0])), uintptr(s.vlen), unix.MSG_DONTWAIT)
	if wait {
		return false
	}
	if e != 0 {
		s.rerr = e
	}
	s.got = int(r)
	return true
}

// address fills message i of b with the reply's payload, destination
// and, when the request's interface is known, an IP_PKTINFO control
// message so the reply leaves through that interface.
func address(b *msgBufs, i int, req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	if !dst.IP.Is4() {
		return fmt.Errorf("udpsock: destination %v is not IPv4", dst.IP)
	}
	if len(reply.Payload) == 0 {
		return errors.New("udpsock: empty reply")
	}
	b.iovs[i].Base = &reply.Payload[0]
	b.iovs[i].SetLen(len(reply.Payload))
	b.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(dst.Port), Addr: dst.IP.As4()}
	h := &b.hdrs[i]
	h.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	h.Hdr.Namelen = unix.SizeofSockaddrInet4
	h.Hdr.Control, h.Hdr.Controllen = nil, 0
	if req.IfIndex != 0 {
		oob := b.oob[i*oobLen : (i+1)*oobLen]
		clear(oob)
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		ch.Level, ch.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		ch.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
		pi.Ifindex = int32(req.IfIndex)
		h.Hdr.Control = &oob[0]
		h.Hdr.SetControllen(oobLen)
	}
	h.Len = 0
	return nil
}

// Send implements engine.Socket: the reply leaves from the socket's port
// through the interface the request arrived on.
func (s *Socket) Send(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := address(&s.send, 0, req, reply, dst); err != nil {
		return err
	}
	s.serr = nil
	if err := s.rc.Write(s.sendFn); err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return engine.ErrClosed
		}
		return fmt.Errorf("udpsock: send to %v:%d: %w", dst.IP, dst.Port, err)
	}
	if s.serr != nil {
		return fmt.Errorf("udpsock: send to %v:%d: %w", dst.IP, dst.Port, s.serr)
	}
	return nil
}

func (s *Socket) sendOne(fd uintptr) bool {
	_, wait, e := pollcall.Do(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.send.hdrs[0].Hdr)), unix.MSG_DONTWAIT, 0)
	if e != 0 {
		s.serr = e
	}
	return !wait
}

// Queue implements engine.BatchSender: the reply joins the batch Flush
// sends with one sendmmsg; its buffer must stay untouched until then. A
// full batch is sent first.
func (s *Socket) Queue(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	if s.txN == len(s.tx.hdrs) {
		sent, err := s.flush()
		s.txSent += sent
		if err != nil {
			return err
		}
	}
	if err := address(&s.tx, s.txN, req, reply, dst); err != nil {
		return err
	}
	s.txN++
	return nil
}

// Flush implements engine.BatchSender: it sends every queued reply and
// reports how many left since the last Flush.
func (s *Socket) Flush() (int, error) {
	sent, err := s.flush()
	sent += s.txSent
	s.txSent = 0
	return sent, err
}

func (s *Socket) flush() (int, error) {
	n := s.txN
	s.txN = 0
	if n == 0 {
		return 0, nil
	}
	s.flushN, s.txGot, s.serr = n, 0, nil
	err := s.rc.Write(s.txFn)
	sent := s.txGot
	if err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return sent, engine.ErrClosed
		}
		return sent, fmt.Errorf("udpsock: sendmmsg: %w", err)
	}
	if s.serr != nil {
		return sent, fmt.Errorf("udpsock: sendmmsg: %w", s.serr)
	}
	return sent, nil
}

// sendBatch sends messages s.txGot..s.flushN of the batch; false means
// "wait until the socket can take more".
func (s *Socket) sendBatch(fd uintptr) bool {
	for s.txGot < s.flushN {
		r, wait, e := pollcall.Do(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.tx.hdrs[s.txGot])), uintptr(s.flushN-s.txGot), unix.MSG_DONTWAIT)
		if wait {
			return false
		}
		if e != 0 {
			s.serr = e
			return true
		}
		s.txGot += int(r)
	}
	return true
}

// Close implements engine.Socket.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}
