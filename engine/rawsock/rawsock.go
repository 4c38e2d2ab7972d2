package rawsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/filter"
	"github.com/peerboot/peerboot/engine/internal/pollcall"
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

	// NoRing reads with recvmmsg instead of the TPACKET_V3 receive ring
	// (which is used by default and falls back to recvmmsg when the
	// kernel refuses it).
	NoRing bool
	// RingBlockSize is the size of one ring block in bytes, a multiple of
	// the page size (default 24 KiB: about 54 DHCP requests). The kernel
	// wakes the reader when a block is full or its timeout expires, so a
	// small block keeps latency low under load and a large one saves
	// wake-ups.
	RingBlockSize int
	// RingBlocks is the number of blocks (default: RecvBuffer /
	// RingBlockSize). When every block waits for the reader, the kernel
	// drops frames and counts them (engine.KernelDropper).
	RingBlocks int
	// NoTxRing sends with sendmmsg (batches) and write (single replies)
	// instead of the TPACKET_V3 transmit ring.
	NoTxRing bool
	// RingTimeout is how long the kernel keeps a block that is not full
	// before handing it over (millisecond granularity, default 1 ms): the
	// most a request waits to be seen when traffic is light.
	RingTimeout time.Duration
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
	ring       *rxRing // nil: recvmmsg
	ringErr    error   // why the ring is not used
	hdrs       []unix.Mmsghdr
	iovs       []unix.Iovec
	vlen       int
	got        int
	rerr       error
	readFn     func(fd uintptr) bool
	pending    []*engine.Packet
	epfd       int           // private epoll instance holding the socket for input
	closing    atomic.Bool   // Close was called
	otherHost  atomic.Uint64 // frames for another host, skipped
	kernelDrop atomic.Uint64 // frames the kernel dropped (ring or buffer full)

	// transmit ring on a socket of its own (nil: sendmmsg and write on
	// fd); txMu orders the slots between the reader's Queue and the
	// workers' Send
	tx      *txRing
	txfd    int // the transmit ring's socket, or fd
	txErr   error
	txMu    sync.Mutex
	txSlots []int // slots the reader queued since the last Flush
	// batchHeld: the reader holds mu for reading and txMu from the first
	// Queue of a batch to its Flush, rather than taking both for every
	// reply (workers' Send waits for the batch meanwhile)
	batchHeld bool
	// kickAddr is the destination of every kick: the interface and the
	// IPv4 EtherType, so the kernel need not parse each frame's header to
	// learn its protocol (the transmit socket is bound with protocol 0)
	kickAddr unix.RawSockaddrLinklayer

	// batch send state (Queue, Flush), used by one goroutine
	txHdrs []unix.Mmsghdr
	txIovs []unix.Iovec
	txN    int
	txSent int // sent by flushes of a full batch since the last Flush

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
	// Replies go straight to the driver: a DHCP reply gains nothing from
	// the device's queueing discipline, and skipping it is cheaper.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	s := &Socket{
		fd:      fd,
		txfd:    fd,
		ifIndex: ifi.Index,
		ip:      src.As4(),
		filter:  flt,
		hdrs:    make([]unix.Mmsghdr, cfg.Batch),
		iovs:    make([]unix.Iovec, cfg.Batch),
		txHdrs:  make([]unix.Mmsghdr, cfg.Batch),
		txIovs:  make([]unix.Iovec, cfg.Batch),
		txSlots: make([]int, 0, cfg.Batch),
	}
	s.readFn = s.recv
	s.txErr = errors.New("disabled by configuration")
	if cfg.NoRing {
		s.ringErr = s.txErr
	} else {
		s.ring, s.ringErr = setupRxRing(fd, ringSize(cfg))
		if s.ringErr != nil {
			s.txErr = s.ringErr
		} else if !cfg.NoTxRing {
			var txfd int
			if txfd, s.tx, s.txErr = openTxSocket(ifi.Index, 4*cfg.Batch); s.txErr == nil {
				s.txfd = txfd
				s.kickAddr = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(ifi.Index)}
			}
		}
	}
	closeRings := func() {
		if s.tx != nil {
			unix.Close(s.txfd)
			s.tx.close()
		}
		s.ring.close()
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		closeRings()
		return fail(fmt.Errorf("rawsock: bind to %s: %w", cfg.Interface, err))
	}
	copy(s.mac[:], ifi.HardwareAddr)
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
		s.txHdrs[i].Hdr.Iov = &s.txIovs[i]
		s.txHdrs[i].Hdr.SetIovlen(1)
	}
	pollFD := fd
	if s.ring != nil {
		// The runtime's poller watches a private epoll instance that
		// holds the socket for input only, not the socket itself: the
		// runtime registers every file for output too, and the socket
		// turns writable each time a sent frame's buffer is released,
		// at a wake-up attempt per reply.
		if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			closeRings()
			return fail(fmt.Errorf("rawsock: epoll: %w", err))
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		err := unix.SetNonblock(s.epfd, true)
		if err == nil {
			err = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
		}
		if err != nil {
			unix.Close(s.epfd)
			closeRings()
			return fail(fmt.Errorf("rawsock: epoll: %w", err))
		}
		pollFD = s.epfd
		s.readFn = s.fromRing
	}
	s.file = os.NewFile(uintptr(pollFD), "packet:"+cfg.Interface)
	s.rc, err = s.file.SyscallConn()
	if err != nil {
		s.file.Close()
		if s.ring != nil {
			unix.Close(fd)
		}
		closeRings()
		flt.Close()
		return nil, fmt.Errorf("rawsock: %w", err)
	}
	return s, nil
}

// ringSize applies the defaults of the ring settings.
func ringSize(cfg Config) ringConfig {
	rc := ringConfig{blockSize: cfg.RingBlockSize, blocks: cfg.RingBlocks, timeoutMS: int(cfg.RingTimeout / time.Millisecond)}
	page := os.Getpagesize()
	if rc.blockSize <= 0 {
		rc.blockSize = 24 << 10
	}
	rc.blockSize = (rc.blockSize + page - 1) / page * page
	if rc.blocks <= 0 {
		rc.blocks = max(cfg.RecvBuffer/rc.blockSize, 4)
	}
	if rc.timeoutMS <= 0 {
		rc.timeoutMS = 1
	}
	return rc
}

// RingError says why frames are read with recvmmsg instead of the
// TPACKET_V3 ring (nil when the ring is used).
func (s *Socket) RingError() error { return s.ringErr }

// TxRingError says why replies are sent with sendmmsg and write instead
// of the TPACKET_V3 transmit ring (nil when the ring is used).
func (s *Socket) TxRingError() error { return s.txErr }

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

// Filtered implements engine.KernelFiltered: frames the kernel filter
// dropped, plus frames addressed to another host that the ring delivered
// (a promiscuous interface, a bridge flooding unknown unicast).
func (s *Socket) Filtered() uint64 { return s.filter.Filtered() + s.otherHost.Load() }

// KernelDropped implements engine.KernelDropper: frames that passed the
// filter but found the receive ring (or buffer) full.
func (s *Socket) KernelDropped() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return s.kernelDrop.Load()
	}
	// The kernel resets its counters on every read.
	if s.ring != nil {
		if st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			return s.kernelDrop.Add(uint64(st.Drops))
		}
	} else if st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		return s.kernelDrop.Add(uint64(st.Drops))
	}
	return s.kernelDrop.Load()
}

// Interface returns the index, MAC and IPv4 source address replies use.
func (s *Socket) Interface() (index int, mac frame.MAC, ip netip.Addr) {
	return s.ifIndex, s.mac, netip.AddrFrom4(s.ip)
}

// ReadBatch implements engine.Socket: it blocks until frames arrive and
// copies up to len(pkts) of them out of the receive ring (or reads them
// with one recvmmsg when there is no ring).
func (s *Socket) ReadBatch(pkts []*engine.Packet) (int, error) {
	if s.ring != nil {
		return s.readRing(pkts)
	}
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
		if s.closing.Load() || errors.Is(err, os.ErrClosed) {
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

// readRing copies frames out of the receive ring, waiting in the
// runtime's poller (on the private epoll instance) when it is empty.
func (s *Socket) readRing(pkts []*engine.Packet) (int, error) {
	s.pending, s.got = pkts, 0
	err := s.rc.Read(s.readFn)
	s.pending = nil
	if err != nil {
		// A read on a closed file fails with the poller's own error,
		// which is not os.ErrClosed.
		if s.closing.Load() || errors.Is(err, os.ErrClosed) {
			return 0, engine.ErrClosed
		}
		return 0, fmt.Errorf("rawsock: read: %w", err)
	}
	return s.got, nil
}

// fromRing is called by the runtime poller (so Close waits for it before
// the ring is unmapped); false means "wait for readiness".
//
// It needs no system call: the private epoll instance is never read.
// Every block the kernel retires wakes the socket's wait queue, whose
// epoll callback wakes the private instance's own pollers (the runtime's
// epoll, edge-triggered) whether or not the socket is already on the
// private ready list; and when the runtime's epoll asks the private
// instance whether it is readable, the private instance polls the socket
// and drops it from its ready list if no block is ready.
func (s *Socket) fromRing(uintptr) bool {
	n, other := s.ring.read(s.pending, s.ifIndex)
	if other > 0 {
		s.otherHost.Add(other)
	}
	s.got = n
	return n > 0
}

// recv is called by the runtime poller; false means "wait for readiness".
func (s *Socket) recv(fd uintptr) bool {
	r, wait, e := pollcall.Do(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.vlen), unix.MSG_DONTWAIT)
	if wait {
		return false
	}
	if e != 0 {
		s.rerr = e
	}
	s.got = int(r)
	return true
}

// Send implements engine.Socket: it writes the reply as one Ethernet frame
// from the interface's MAC and IPv4 address to dst.
func (s *Socket) Send(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	buf, err := s.buildFrame(reply, dst)
	if err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return engine.ErrClosed
	}
	if s.tx != nil {
		if _, err := s.toTxRing(buf); err != nil {
			return err
		}
		return s.kick()
	}
	for tries := 0; ; tries++ {
		_, err := unix.Write(s.txfd, buf)
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
		pfd := [1]unix.PollFd{{Fd: int32(s.txfd), Events: unix.POLLOUT}}
		_, _ = unix.Poll(pfd[:], 10)
	}
}

// buildFrame puts the Ethernet, IPv4 and UDP headers in front of the
// reply's payload, in the reply buffer's headroom.
func (s *Socket) buildFrame(reply *engine.ReplyBuffer, dst engine.Destination) ([]byte, error) {
	if !dst.IP.Is4() {
		return nil, fmt.Errorf("rawsock: destination %v is not IPv4", dst.IP)
	}
	h := frame.Header{
		Eth: frame.Ethernet{Dst: dst.MAC, Src: s.mac},
		IP:  frame.IPv4{TTL: 64, Src: s.ip, Dst: dst.IP.As4()},
		UDP: frame.UDP{SrcPort: dst.SrcPort, DstPort: dst.Port},
	}
	buf, ok := reply.Frame(frame.HeaderLen)
	if !ok {
		return nil, errors.New("rawsock: reply too large")
	}
	if s.tx != nil {
		// The transmit ring asks the kernel for checksum offload (see
		// txRing.fill): the NIC, or the kernel for a device without
		// offload, completes the checksum over the datagram, as for any
		// UDP socket's datagram.
		h.Mode = frame.PartialUDPChecksum
	}
	if _, err := frame.PutHeaders(buf, &h, len(buf)-frame.HeaderLen); err != nil {
		return nil, fmt.Errorf("rawsock: building frame: %w", err)
	}
	return buf, nil
}

// Queue implements engine.BatchSender: it builds the reply's frame in
// place and adds it to the batch Flush sends with one sendmmsg. The reply
// buffer must stay untouched until Flush returns. A full batch is flushed
// first.
func (s *Socket) Queue(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	buf, err := s.buildFrame(reply, dst)
	if err != nil {
		return err
	}
	if s.tx != nil {
		if !s.batchHeld {
			s.mu.RLock()
			if s.closed {
				s.mu.RUnlock()
				return engine.ErrClosed
			}
			s.txMu.Lock()
			s.batchHeld = true
		}
		if len(s.txSlots) == cap(s.txSlots) {
			s.txSent += s.flushTxRing()
		}
		slot, err := s.toTxRingLocked(buf)
		if err != nil {
			if len(s.txSlots) == 0 {
				// Nothing of this batch waits for Flush, which the
				// engine calls only after a successful Queue.
				s.releaseBatch()
			}
			return err
		}
		s.txSlots = append(s.txSlots, slot)
		return nil
	}
	if s.txN == len(s.txHdrs) {
		sent, err := s.flush()
		s.txSent += sent
		if err != nil {
			return err
		}
	}
	s.txIovs[s.txN].Base = &buf[0]
	s.txIovs[s.txN].SetLen(len(buf))
	s.txN++
	return nil
}

// Flush implements engine.BatchSender: it sends every queued frame and
// reports how many left since the last Flush. The batch is empty
// afterwards even on error.
func (s *Socket) Flush() (int, error) {
	if s.tx != nil {
		sent := s.txSent
		s.txSent = 0
		if s.batchHeld {
			sent += s.flushTxRing()
			s.releaseBatch()
		}
		return sent, nil
	}
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, engine.ErrClosed
	}
	sent := 0
	for tries := 0; sent < n; {
		// A raw system call: the socket never blocks (it is
		// non-blocking), so the runtime need not hand this thread's P to
		// another thread while the frames go out, which costs a thread
		// wake-up when sending a batch takes longer than sysmon's tick.
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.txfd), uintptr(unsafe.Pointer(&s.txHdrs[sent])), uintptr(n-sent), 0, 0, 0)
		switch {
		case e == 0:
			sent += int(r)
			continue
		case e == unix.EINTR:
			continue
		case e != unix.EAGAIN || tries == 3:
			return sent, fmt.Errorf("rawsock: sendmmsg: %w", e)
		}
		tries++
		pfd := [1]unix.PollFd{{Fd: int32(s.txfd), Events: unix.POLLOUT}}
		_, _ = unix.Poll(pfd[:], 10)
	}
	return sent, nil
}

// releaseBatch ends the reader's hold on the transmit ring.
func (s *Socket) releaseBatch() {
	s.batchHeld = false
	s.txMu.Unlock()
	s.mu.RUnlock()
}

// toTxRing copies a frame into the next transmit slot (see
// toTxRingLocked). The caller holds s.mu for reading.
func (s *Socket) toTxRing(frame []byte) (int, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.toTxRingLocked(frame)
}

// toTxRingLocked copies a frame into the next transmit slot, waiting
// briefly for the kernel to free one when the ring is full. The caller
// holds s.mu for reading and s.txMu.
func (s *Socket) toTxRingLocked(frame []byte) (int, error) {
	if len(frame) > txMaxFrame {
		return 0, fmt.Errorf("rawsock: frame of %d bytes does not fit a transmit slot", len(frame))
	}
	for tries := 0; ; tries++ {
		if slot, ok := s.tx.claim(); ok {
			s.tx.fill(slot, frame)
			return slot, nil
		}
		if tries == 3 {
			return 0, errors.New("rawsock: transmit ring full")
		}
		// Every slot waits: have the kernel send them, then wait a
		// little for room.
		_ = s.kick()
		pfd := [1]unix.PollFd{{Fd: int32(s.txfd), Events: unix.POLLOUT}}
		_, _ = unix.Poll(pfd[:], 10)
	}
}

// flushTxRing has the kernel send the reader's queued slots and reports
// how many left; a slot the kernel could not send yet stays queued for
// the next kick but is not counted. The caller holds s.mu for reading.
func (s *Socket) flushTxRing() int {
	n := len(s.txSlots)
	if n == 0 {
		return 0
	}
	_ = s.kick()
	for _, slot := range s.txSlots {
		if s.tx.pending(slot) {
			n--
		}
	}
	s.txSlots = s.txSlots[:0]
	return n
}

// kick makes the kernel transmit every slot marked for sending: a send()
// with no data. It is a raw system call for the reason given in flush.
func (s *Socket) kick() error {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.txfd), 0, 0, unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&s.kickAddr)), unix.SizeofSockaddrLinklayer)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return fmt.Errorf("rawsock: transmit ring send: %w", e)
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
	s.closing.Store(true)
	s.filter.Close()
	// Close returns once no read is in progress, so the ring can go.
	err := s.file.Close()
	if s.ring != nil {
		if cerr := unix.Close(s.fd); err == nil {
			err = cerr
		}
		if rerr := s.ring.close(); err == nil {
			err = rerr
		}
	}
	if s.tx != nil {
		if cerr := unix.Close(s.txfd); err == nil {
			err = cerr
		}
		if terr := s.tx.close(); err == nil {
			err = terr
		}
	}
	return err
}
