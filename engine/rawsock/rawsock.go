package rawsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/filter"
)

// Config configures Open.
type Config struct {
	Interface string   // required
	Ports     []uint16 // UDP destination ports to receive (e.g. 67, 4011)
	// ForceClassicBPF uses the classic BPF filter instead of eBPF.
	ForceClassicBPF bool
	// Batch is the most frames one read returns (default 64).
	Batch int
	// RecvBuffer is SO_RCVBUF in bytes (default 4 MiB).
	RecvBuffer int
	// SourceIP is the IPv4 source of replies (default: the interface's
	// first IPv4 address, or 0.0.0.0 when it has none).
	SourceIP netip.Addr
}

// Socket is an AF_PACKET socket on one interface. It implements
// engine.Socket and engine.KernelFiltered.
type Socket struct {
	file    *os.File
	rc      syscall.RawConn
	fd      int
	ifIndex int
	mac     frame.MAC
	ip      [4]byte
	filter  *filter.Filter

	// read state, used by the one reader goroutine
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	vlen   int
	got    int
	rerr   error
	readFn func(fd uintptr) bool

	mu     sync.RWMutex // write-held by Close, read-held by Send
	closed bool
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open creates the socket in the calling thread's network namespace.
func Open(cfg Config) (*Socket, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("rawsock: interface %q: %w", cfg.Interface, err)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.RecvBuffer <= 0 {
		cfg.RecvBuffer = 4 << 20
	}
	src := cfg.SourceIP
	if !src.IsValid() {
		src = interfaceIPv4(ifi)
	}
	if !src.Is4() {
		return nil, fmt.Errorf("rawsock: source address %v is not IPv4", src)
	}
	flt, err := filter.New(cfg.Ports, filter.Options{ForceClassic: cfg.ForceClassicBPF})
	if err != nil {
		return nil, err
	}
	// Protocol 0: the socket receives nothing until bind, so the filter
	// is in place before the first frame is queued.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		flt.Close()
		return nil, fmt.Errorf("rawsock: socket(AF_PACKET): %w", err)
	}
	fail := func(err error) (*Socket, error) {
		unix.Close(fd)
		flt.Close()
		return nil, err
	}
	if err := flt.Attach(fd); err != nil {
		return fail(fmt.Errorf("rawsock: %w", err))
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.RecvBuffer)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Errorf("rawsock: bind to %s: %w", cfg.Interface, err))
	}
	s := &Socket{
		fd:      fd,
		ifIndex: ifi.Index,
		ip:      src.As4(),
		filter:  flt,
		hdrs:    make([]unix.Mmsghdr, cfg.Batch),
		iovs:    make([]unix.Iovec, cfg.Batch),
	}
	copy(s.mac[:], ifi.HardwareAddr)
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	s.readFn = s.recv
	s.file = os.NewFile(uintptr(fd), "packet:"+cfg.Interface)
	s.rc, err = s.file.SyscallConn()
	if err != nil {
		s.file.Close()
		flt.Close()
		return nil, fmt.Errorf("rawsock: %w", err)
	}
	return s, nil
}

func interfaceIPv4(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip.Is4() {
					return ip
				}
			}
		}
	}
	return netip.IPv4Unspecified()
}

// Filter is the kernel filter attached to the socket (its mode and
// counters).
func (s *Socket) Filter() *filter.Filter { return s.filter }

// Filtered implements engine.KernelFiltered.
func (s *Socket) Filtered() uint64 { return s.filter.Filtered() }

// Interface returns the index, MAC and IPv4 source address replies use.
func (s *Socket) Interface() (index int, mac frame.MAC, ip netip.Addr) {
	return s.ifIndex, s.mac, netip.AddrFrom4(s.ip)
}

// ReadBatch implements engine.Socket: it blocks until frames arrive and
// reads up to len(pkts) of them with one recvmmsg.
func (s *Socket) ReadBatch(pkts []*engine.Packet) (int, error) {
	n := min(len(pkts), len(s.hdrs))
	for i := range n {
		buf := pkts[i].Buffer()
		s.iovs[i].Base = &buf[0]
		s.iovs[i].SetLen(len(buf))
		s.hdrs[i].Hdr.Flags = 0
		s.hdrs[i].Len = 0
	}
	s.vlen, s.got, s.rerr = n, 0, nil
	if err := s.rc.Read(s.readFn); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return 0, engine.ErrClosed
		}
		return 0, fmt.Errorf("rawsock: read: %w", err)
	}
	if s.rerr != nil {
		return 0, fmt.Errorf("rawsock: recvmmsg: %w", s.rerr)
	}
	for i := range s.got {
		buf := pkts[i].Buffer()
		l := int(s.hdrs[i].Len)
		if s.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || l > len(buf) {
			l = 0 // truncated: the engine counts it as malformed
		}
		pkts[i].Frame = buf[:l]
		pkts[i].IfIndex = s.ifIndex
	}
	return s.got, nil
}

// recv is called by the runtime poller; false means "wait for readiness".
func (s *Socket) recv(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.vlen), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.got = int(r)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.rerr = e
			return true
		}
	}
}

// Send implements engine.Socket: it writes the reply as one Ethernet frame
// from the interface's MAC and IPv4 address to dst.
func (s *Socket) Send(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	if !dst.IP.Is4() {
		return fmt.Errorf("rawsock: destination %v is not IPv4", dst.IP)
	}
	h := frame.Header{
		Eth: frame.Ethernet{Dst: dst.MAC, Src: s.mac},
		IP:  frame.IPv4{TTL: 64, Src: s.ip, Dst: dst.IP.As4()},
		UDP: frame.UDP{SrcPort: dst.SrcPort, DstPort: dst.Port},
	}
	buf, ok := reply.Frame(frame.HeaderLen)
	if !ok {
		return errors.New("rawsock: reply too large")
	}
	if _, err := frame.PutHeaders(buf, &h, len(buf)-frame.HeaderLen); err != nil {
		return fmt.Errorf("rawsock: building frame: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return engine.ErrClosed
	}
	for tries := 0; ; tries++ {
		_, err := unix.Write(s.fd, buf)
		if err == nil {
			return nil
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EAGAIN || tries == 3 {
			return fmt.Errorf("rawsock: send: %w", err)
		}
		// The device queue is full: wait a little for room.
		pfd := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		_, _ = unix.Poll(pfd[:], 10)
	}
}

// Close closes the socket and releases the filter's maps; a blocked
// ReadBatch returns engine.ErrClosed.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.file.Close()
	s.filter.Close()
	return err
}
