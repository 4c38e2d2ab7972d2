//go:build linux

package udpbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Method is how a Sender puts a batch on the wire.
type Method int

// Send methods, fastest first. Auto picks the fastest that works.
const (
	Auto     Method = iota
	GSO             // sendmmsg of messages each carrying a UDP_SEGMENT cmsg
	Sendmmsg        // sendmmsg, one message per datagram
	Plain           // one write per datagram
)

func (m Method) String() string {
	switch m {
	case GSO:
		return "gso"
	case Sendmmsg:
		return "sendmmsg"
	case Plain:
		return "plain"
	}
	return "auto"
}

// maxGSOSegments is the kernel's per-send segment limit (UDP_MAX_SEGMENTS
// is 64 on older kernels, 128 on newer ones; 64 works everywhere).
const maxGSOSegments = 64

// maxGSOBytes is the largest UDP payload one IPv4 datagram can carry before
// segmentation (65535 - 20 - 8).
const maxGSOBytes = 65507

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// Sender sends batches of datagrams laid out back to back in one buffer,
// each stride bytes long except possibly the last (the layout UDP GSO
// needs). It is not safe for concurrent use.
type Sender struct {
	rc     syscall.RawConn
	method Method
	stride int
	// per-batch state used by the write callback
	msgs      []mmsghdr
	iovs      []unix.Iovec
	oob       []byte
	name      unix.RawSockaddrInet6 // big enough for either family
	nameLen   uint32
	hasDst    bool
	dst       netip.AddrPort
	first     int
	count     int
	err       error
	errno     unix.Errno
	writeFn   func(fd uintptr) bool
	sendmsgFn func(fd uintptr) bool

	// Syscalls counts send system calls, Datagrams the datagrams sent.
	Syscalls, Datagrams uint64
}

// NewSender prepares a sender on conn for batches of up to maxPackets
// datagrams of stride bytes. dst is the destination for an unconnected
// socket; pass the zero AddrPort when conn is connected. prefer forces a
// method (Auto picks GSO, falling back at the first failure).
func NewSender(conn *net.UDPConn, dst netip.AddrPort, stride, maxPackets int, prefer Method) (*Sender, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: raw conn: %w", err)
	}
	return newSender(rc, dst, stride, maxPackets, prefer)
}

// NewSocketSender is NewSender for a Socket: its batches block the
// calling thread while the send buffer is full.
func NewSocketSender(sock *Socket, dst netip.AddrPort, stride, maxPackets int, prefer Method) (*Sender, error) {
	return newSender(sock.RawConn(), dst, stride, maxPackets, prefer)
}

func newSender(rc syscall.RawConn, dst netip.AddrPort, stride, maxPackets int, prefer Method) (*Sender, error) {
	if stride <= 0 || maxPackets <= 0 {
		return nil, errors.New("udpbatch: stride and maxPackets must be positive")
	}
	s := &Sender{rc: rc, stride: stride, method: prefer,
		msgs: make([]mmsghdr, maxPackets), iovs: make([]unix.Iovec, maxPackets),
		oob: make([]byte, unix.CmsgSpace(2))}
	if s.method == Auto {
		s.method = GSO
	}
	if s.method == GSO && (stride > maxGSOBytes/2) {
		s.method = Sendmmsg // one datagram per message anyway
	}
	if dst.IsValid() {
		s.hasDst = true
		s.dst = dst
		s.setName(dst)
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&s.oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(s.oob[unix.CmsgLen(0):], uint16(stride))
	s.writeFn, s.sendmsgFn = s.write, s.sendmsg
	return s, nil
}

func (s *Sender) setName(dst netip.AddrPort) {
	a := dst.Addr().Unmap()
	if a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.name))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dst.Port())
		sa.Addr = a.As4()
		s.nameLen = unix.SizeofSockaddrInet4
		return
	}
	s.name.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.name.Port))[:], dst.Port())
	s.name.Addr = a.As16()
	s.nameLen = unix.SizeofSockaddrInet6
}

// Method returns the method in use.
func (s *Sender) Method() Method { return s.method }

// Send sends the datagrams in buf (each stride bytes, the last possibly
// shorter). It returns once all are handed to the kernel.
func (s *Sender) Send(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	for {
		err := s.send(buf)
		if err == nil {
			return nil
		}
		// GSO needs checksum offload on the route's device; without it
		// the kernel says EIO (or EINVAL on old kernels). Fall back once.
		if s.method == GSO && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT)) {
			s.method = Sendmmsg
			continue
		}
		if s.method == Sendmmsg && errors.Is(err, unix.ENOSYS) {
			s.method = Plain
			continue
		}
		return err
	}
}

func (s *Sender) send(buf []byte) error {
	n := (len(buf) + s.stride - 1) / s.stride
	if n > len(s.msgs) {
		return fmt.Errorf("udpbatch: batch of %d datagrams exceeds %d", n, len(s.msgs))
	}
	switch s.method {
	case Plain:
		for off := 0; off < len(buf); off += s.stride {
			s.fillMsg(0, buf[off:min(off+s.stride, len(buf))], false)
			s.Syscalls++
			if errno := s.sendmsgOnce(); errno != 0 {
				return errno
			}
			s.Datagrams++
		}
		return nil
	case GSO:
		perMsg := min(maxGSOSegments, maxGSOBytes/s.stride)
		chunk := perMsg * s.stride
		m := 0
		for off := 0; off < len(buf); off += chunk {
			end := min(off+chunk, len(buf))
			s.fillMsg(m, buf[off:end], end-off > s.stride)
			m++
		}
		s.count = m
	default:
		m := 0
		for off := 0; off < len(buf); off += s.stride {
			s.fillMsg(m, buf[off:min(off+s.stride, len(buf))], false)
			m++
		}
		s.count = m
	}
	s.first, s.err = 0, nil
	if err := s.rc.Write(s.writeFn); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	s.Datagrams += uint64(n)
	return nil
}

// SendVec sends datagrams gathered from iovs, per iovecs each (the
// caller's header and payload, say), every datagram stride bytes long
// except possibly the last. With GSO the kernel segments the gathered
// bytes at stride boundaries; no payload is copied in user space.
func (s *Sender) SendVec(iovs []unix.Iovec, per int) error {
	if len(iovs) == 0 || per <= 0 || len(iovs)%per != 0 {
		return fmt.Errorf("udpbatch: %d iovecs are not whole datagrams of %d", len(iovs), per)
	}
	n := len(iovs) / per
	if n > len(s.msgs) {
		return fmt.Errorf("udpbatch: batch of %d datagrams exceeds %d", n, len(s.msgs))
	}
	for {
		err := s.sendVec(iovs, per, n)
		if err == nil {
			s.Datagrams += uint64(n)
			return nil
		}
		if s.method == GSO && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT)) {
			s.method = Sendmmsg
			continue
		}
		if s.method == Sendmmsg && errors.Is(err, unix.ENOSYS) {
			s.method = Plain
			continue
		}
		return err
	}
}

func (s *Sender) sendVec(iovs []unix.Iovec, per, n int) error {
	m := 0
	switch s.method {
	case GSO:
		perMsg := min(maxGSOSegments, maxGSOBytes/s.stride)
		for p := 0; p < n; p += perMsg {
			cnt := min(perMsg, n-p)
			s.fillMsgVec(m, iovs[p*per:(p+cnt)*per], cnt > 1)
			m++
		}
	case Plain:
		// One sendmsg per datagram.
		for p := 0; p < n; p++ {
			s.fillMsgVec(0, iovs[p*per:(p+1)*per], false)
			s.Syscalls++
			if errno := s.sendmsgOnce(); errno != 0 {
				return errno
			}
		}
		return nil
	default:
		for p := 0; p < n; p++ {
			s.fillMsgVec(m, iovs[p*per:(p+1)*per], false)
			m++
		}
	}
	s.count, s.first, s.err = m, 0, nil
	if err := s.rc.Write(s.writeFn); err != nil {
		return err
	}
	return s.err
}

// sendmsgOnce sends message 0 with sendmsg, waiting while the socket
// buffer is full.
func (s *Sender) sendmsgOnce() unix.Errno {
	s.errno = 0
	if err := s.rc.Write(s.sendmsgFn); err != nil && s.errno == 0 {
		return unix.EBADF
	}
	return s.errno
}

// sendmsg is the RawConn callback of sendmsgOnce.
func (s *Sender) sendmsg(fd uintptr) bool {
	for {
		_, _, s.errno = unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.msgs[0].hdr)), 0)
		if s.errno == unix.EINTR {
			continue
		}
		return s.errno != unix.EAGAIN
	}
}

func (s *Sender) fillMsgVec(i int, iovs []unix.Iovec, segmented bool) {
	h := &s.msgs[i].hdr
	*h = unix.Msghdr{Iov: &iovs[0]}
	h.SetIovlen(len(iovs))
	if s.hasDst {
		h.Name = (*byte)(unsafe.Pointer(&s.name))
		h.Namelen = s.nameLen
	}
	if segmented {
		h.Control = &s.oob[0]
		h.SetControllen(len(s.oob))
	}
}

func (s *Sender) fillMsg(i int, b []byte, segmented bool) {
	s.iovs[i].Base = &b[0]
	s.iovs[i].SetLen(len(b))
	h := &s.msgs[i].hdr
	*h = unix.Msghdr{Iov: &s.iovs[i]}
	h.SetIovlen(1)
	if s.hasDst {
		h.Name = (*byte)(unsafe.Pointer(&s.name))
		h.Namelen = s.nameLen
	}
	if segmented {
		h.Control = &s.oob[0]
		h.SetControllen(len(s.oob))
	}
}

// write is the RawConn callback: sendmmsg until every message is sent.
func (s *Sender) write(fd uintptr) bool {
	for s.first < s.count {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[s.first])),
			uintptr(s.count-s.first), 0, 0, 0)
		s.Syscalls++
		if errno == unix.EAGAIN {
			return false
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			s.err = errno
			return true
		}
		s.first += int(r)
	}
	return true
}

// Receiver reads up to len(bufs) datagrams per system call with recvmmsg.
// It is not safe for concurrent use.
type Receiver struct {
	rc     syscall.RawConn
	flags  uintptr // MSG_DONTWAIT (poller) or MSG_WAITFORONE (Socket)
	bufs   [][]byte
	msgs   []mmsghdr
	iovs   []unix.Iovec
	n      int
	err    error
	readFn func(fd uintptr) bool
	// Syscalls counts receive system calls.
	Syscalls uint64
}

// NewReceiver prepares batch reads of up to batch datagrams of at most
// size bytes each on conn.
func NewReceiver(conn *net.UDPConn, batch, size int) (*Receiver, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: raw conn: %w", err)
	}
	return newReceiver(rc, unix.MSG_DONTWAIT, batch, size), nil
}

// NewSocketReceiver is NewReceiver for a Socket: Recv blocks the calling
// thread in the kernel until a datagram arrives or the timeout set with
// sock.RecvTimeout passes (os.ErrDeadlineExceeded; a signal may end the
// wait earlier with the same error, so a caller with a deadline loops
// until it).
func NewSocketReceiver(sock *Socket, batch, size int) *Receiver {
	return newReceiver(sock.RawConn(), unix.MSG_WAITFORONE, batch, size)
}

func newReceiver(rc syscall.RawConn, flags uintptr, batch, size int) *Receiver {
	r := &Receiver{rc: rc, flags: flags, bufs: make([][]byte, batch), msgs: make([]mmsghdr, batch), iovs: make([]unix.Iovec, batch)}
	backing := make([]byte, batch*size)
	for i := range r.bufs {
		r.bufs[i] = backing[i*size : (i+1)*size : (i+1)*size]
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.msgs[i].hdr.Iov = &r.iovs[i]
		r.msgs[i].hdr.SetIovlen(1)
	}
	r.readFn = r.read
	return r
}

// Recv blocks until at least one datagram is available (or the conn's read
// deadline passes) and returns how many were read. Packet(i) returns them.
func (r *Receiver) Recv() (int, error) {
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// Packet returns datagram i of the last Recv; it is overwritten by the
// next Recv.
func (r *Receiver) Packet(i int) []byte { return r.bufs[i][:r.msgs[i].len] }

func (r *Receiver) read(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])),
			uintptr(len(r.msgs)), r.flags, 0, 0)
		r.Syscalls++
		switch errno {
		case 0:
			r.n = int(n)
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			if r.flags&unix.MSG_WAITFORONE != 0 {
				return false // a blocking wait cut short: the caller checks its deadline
			}
			continue
		default:
			r.err = errno
			return true
		}
	}
}
