//go:build linux

package udpbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is a connected UDP socket kept outside Go's network poller: its
// reads block the calling thread in the kernel. A datagram then wakes that
// thread directly, instead of waking the poller's thread, which readies
// the goroutine, which reads again. For a transfer bound by round trips
// this is the shorter path; the price is one OS thread per blocked read, so
// it suits a few concurrent transfers, not thousands.
//
// A Socket is used by one goroutine at a time; Close must not race with a
// read or write in progress.
type Socket struct {
	fd       int
	family   int // AF_INET or AF_INET6
	closed   atomic.Bool
	rcvTimeo time.Duration // SO_RCVTIMEO in force
}

// errSocketClosed is returned by the RawConn methods of a closed Socket.
var errSocketClosed = errors.New("udpbatch: socket closed")

// NewSocket opens a UDP socket for family's addresses (an IPv4 or IPv6
// address decides), bound to local (any port) when local is valid.
func NewSocket(local, family netip.Addr) (*Socket, error) {
	domain := unix.AF_INET
	if family.Is6() && !family.Is4In6() {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udpbatch: socket: %w", err)
	}
	s := &Socket{fd: fd, family: domain}
	if local.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local, 0), domain)); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("udpbatch: bind %v: %w", local, err)
		}
	}
	return s, nil
}

// DialSocket opens a UDP socket connected to peer, bound to local (any
// port) when local is valid.
func DialSocket(local netip.Addr, peer netip.AddrPort) (*Socket, error) {
	s, err := NewSocket(local, peer.Addr())
	if err != nil {
		return nil, err
	}
	if err := s.Connect(peer); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect fixes the socket's peer: it then only receives from it.
func (s *Socket) Connect(peer netip.AddrPort) error {
	if err := unix.Connect(s.fd, sockaddr(peer, s.family)); err != nil {
		return fmt.Errorf("udpbatch: connect %v: %w", peer, err)
	}
	return nil
}

func sockaddr(ap netip.AddrPort, domain int) unix.Sockaddr {
	a := ap.Addr()
	if domain == unix.AF_INET6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16(), ZoneId: zoneIndex(a.Zone())}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
}

// zoneIndex is the interface index of an IPv6 zone (a name or a number).
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	n, _ := strconv.ParseUint(zone, 10, 32)
	return uint32(n)
}

// zoneName is the zone of an IPv6 address received with interface index
// id, named as package net names it.
func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}

// LocalAddr returns the address the socket is bound to.
func (s *Socket) LocalAddr() netip.AddrPort {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return netip.AddrPort{}
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if a.IsLinkLocalUnicast() {
			a = a.WithZone(zoneName(sa.ZoneId))
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Close closes the socket.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return unix.Close(s.fd)
}

// Write sends b to the connected peer.
func (s *Socket) Write(b []byte) (int, error) {
	if s.closed.Load() {
		return 0, errSocketClosed
	}
	for {
		n, err := unix.Write(s.fd, b)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

// WriteTo sends b to to (on an unconnected socket).
func (s *Socket) WriteTo(b []byte, to netip.AddrPort) error {
	if s.closed.Load() {
		return errSocketClosed
	}
	for {
		err := unix.Sendto(s.fd, b, 0, sockaddr(to, s.family))
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// setRecvTimeout sets SO_RCVTIMEO, rounded up to a millisecond, when it
// differs from the one in force. Zero means no timeout.
func (s *Socket) setRecvTimeout(d time.Duration) error {
	if d > 0 {
		d = (d + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	if d == s.rcvTimeo {
		return nil
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("udpbatch: SO_RCVTIMEO: %w", err)
	}
	s.rcvTimeo = d
	return nil
}

// Recv blocks until a datagram arrives or timeout (rounded up to a
// millisecond) passes, and returns its length; a datagram longer than b
// is cut to len(b). On timeout the error is os.ErrDeadlineExceeded (a
// net.Error whose Timeout is true); a signal may end the wait earlier
// with the same error, so a caller with a deadline loops until it.
func (s *Socket) Recv(b []byte, timeout time.Duration) (int, error) {
	n, _, err := s.recv(b, timeout, nil)
	return n, err
}

// RecvFrom is Recv that also returns the sender's address.
func (s *Socket) RecvFrom(b []byte, timeout time.Duration) (int, netip.AddrPort, error) {
	var from unix.RawSockaddrInet6
	return s.recv(b, timeout, &from)
}

func (s *Socket) recv(b []byte, timeout time.Duration, from *unix.RawSockaddrInet6) (int, netip.AddrPort, error) {
	if s.closed.Load() {
		return 0, netip.AddrPort{}, errSocketClosed
	}
	if err := s.setRecvTimeout(max(timeout, time.Millisecond)); err != nil {
		return 0, netip.AddrPort{}, err
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	var fromPtr, fromLen uintptr
	fl := uint32(unsafe.Sizeof(*from))
	if from != nil {
		fromPtr, fromLen = uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&fl))
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(p), uintptr(len(b)), 0, fromPtr, fromLen)
	switch errno {
	case 0:
		var ap netip.AddrPort
		if from != nil {
			ap = rawAddrPort(from)
		}
		return int(r), ap, nil
	case unix.EINTR, unix.EAGAIN:
		// A signal ends the wait early: restarting it would wait the
		// whole timeout again, so the caller checks its clock instead.
		return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
	default:
		return 0, netip.AddrPort{}, errno
	}
}

// TryRecv returns a datagram that is already queued, or 0 without waiting.
func (s *Socket) TryRecv(b []byte) (int, error) {
	if s.closed.Load() {
		return 0, errSocketClosed
	}
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		default:
			return 0, errno
		}
	}
}

func rawAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	a := netip.AddrFrom16(sa.Addr)
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		a = a.WithZone(zoneName(sa.Scope_id))
	}
	return netip.AddrPortFrom(a, port)
}

// RecvTimeout prepares the next RawConn Read to wait at most d (rounded up
// to a millisecond) before giving up with os.ErrDeadlineExceeded.
func (s *Socket) RecvTimeout(d time.Duration) error {
	return s.setRecvTimeout(max(d, time.Millisecond))
}

// RawConn returns the socket as a syscall.RawConn for Sender and Receiver.
// Its Read calls fn once, blocking in the kernel up to the timeout set by
// RecvTimeout; fn returning false (the timeout passed, or a signal ended
// the wait) makes Read return os.ErrDeadlineExceeded.
func (s *Socket) RawConn() syscall.RawConn { return socketRawConn{s} }

// SyscallConn returns the raw connection of sock when it is set, else of
// conn (nil if it has none): for callers holding one transport or the
// other.
func SyscallConn(sock *Socket, conn *net.UDPConn) syscall.RawConn {
	if sock != nil {
		return sock.RawConn()
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

type socketRawConn struct{ s *Socket }

func (c socketRawConn) Control(fn func(fd uintptr)) error {
	if c.s.closed.Load() {
		return errSocketClosed
	}
	fn(uintptr(c.s.fd))
	return nil
}

func (c socketRawConn) Read(fn func(fd uintptr) bool) error {
	if c.s.closed.Load() {
		return errSocketClosed
	}
	if !fn(uintptr(c.s.fd)) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c socketRawConn) Write(fn func(fd uintptr) bool) error {
	if c.s.closed.Load() {
		return errSocketClosed
	}
	// The socket blocks on a full send buffer; EAGAIN can only come from
	// a send timeout, which is never set.
	if !fn(uintptr(c.s.fd)) {
		return unix.EAGAIN
	}
	return nil
}
