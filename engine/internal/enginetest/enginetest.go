// Package enginetest holds what the engine's socket tests share: a lab of
// two namespaces, UDP sockets that can broadcast in it, a BOOTP request
// builder and a handler that answers every request.
//
// It must never import pxe, election, central or tftp.
package enginetest

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/internal/netlab"
)

// Pair builds a lab on subnet with hosts "srv" (.1) and "cli" (.2). It
// fails the test when labs cannot be built (not root).
func Pair(t *testing.T, subnet string) (srv, cli *netlab.Host) {
	t.Helper()
	l, err := netlab.New(subnet)
	if err != nil {
		t.Fatalf("netlab (these tests need root): %v", err)
	}
	t.Cleanup(func() { l.Close() })
	p := netip.MustParsePrefix(subnet).Addr().As4()
	host := func(name string, last byte) *netlab.Host {
		a := p
		a[3] = last
		h, err := l.AddHost(name, netip.AddrFrom4(a).String())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	return host("srv", 1), host("cli", 2)
}

// ListenUDP opens a UDP socket on port in h's namespace, bound to eth0
// with SO_BROADCAST so it can send to 255.255.255.255 (lab namespaces
// have no default route). The test closes it at cleanup.
func ListenUDP(t *testing.T, h *netlab.Host, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := h.Do(func() (err error) {
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port}); err != nil {
			return err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr == nil {
				serr = unix.BindToDevice(int(fd), "eth0")
			}
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// BOOTPRequest is a 300-byte BOOTREQUEST with the given fields.
func BOOTPRequest(xid uint32, ciaddr, giaddr [4]byte, chaddr []byte) []byte {
	m := make([]byte, 300)
	m[0], m[1], m[2] = 1, 1, 6
	binary.BigEndian.PutUint32(m[4:], xid)
	copy(m[12:16], ciaddr[:])
	copy(m[24:28], giaddr[:])
	copy(m[28:44], chaddr)
	copy(m[236:], []byte{99, 130, 83, 99, 255})
	return m
}

// ReplyHandler answers every BOOTREQUEST with a copy turned into a
// BOOTREPLY, without allocating.
type ReplyHandler struct{}

// Handle implements engine.Handler.
func (ReplyHandler) Handle(req *engine.Packet, reply *engine.ReplyBuffer) bool {
	if len(req.Payload) < 240 || req.Payload[0] != 1 {
		return false
	}
	reply.Payload = append(reply.Payload, req.Payload...)
	reply.Payload[0] = 2
	return true
}

// Run runs an engine on sock with h until the test ends.
func Run(t *testing.T, sock engine.Socket, h engine.Handler) *engine.Engine {
	t.Helper()
	return RunWith(t, engine.Config{Socket: sock, Handler: h, Workers: 2, RingSize: 64})
}

// RunWith runs an engine with cfg until the test ends.
func RunWith(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("engine Run did not return")
		}
	})
	return e
}

// ReadReplyFrom reads datagrams on c until one comes from from, and
// returns it (skipping others, e.g. the sender's own looped broadcasts).
func ReadReplyFrom(t *testing.T, c *net.UDPConn, from netip.Addr) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("waiting for a reply from %v on %v: %v", from, c.LocalAddr(), err)
		}
		if src.Addr().Unmap() == from {
			return buf[:n], src
		}
	}
}

// ClientSocket is a blocking UDP socket (a raw file descriptor, so using it
// allocates nothing) on port in h's namespace, bound to eth0, able to
// broadcast, with a 10 s receive timeout so a lost reply fails the test.
// The test closes it at cleanup.
func ClientSocket(t *testing.T, h *netlab.Host, port int) int {
	t.Helper()
	fd := -1
	err := h.Do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
			return err
		}
		if err := unix.BindToDevice(fd, "eth0"); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: port})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// Exchange returns a function that sends req (its xid bumped each call)
// from fd to to and waits for the BOOTREPLY with that xid, for
// testing.AllocsPerRun: it allocates nothing. *failure holds the first
// error; *xid the last xid sent.
func Exchange(fd int, req []byte, to *unix.SockaddrInet4, xid *uint32, failure *error) func() {
	buf := make([]byte, 2048)
	return func() {
		if *failure != nil {
			return
		}
		*xid++
		binary.BigEndian.PutUint32(req[4:], *xid)
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			*failure = err
			return
		}
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				*failure = err
				return
			}
			if n == len(req) && buf[0] == 2 && binary.BigEndian.Uint32(buf[4:]) == *xid {
				return
			}
		}
	}
}

// WaitSent waits a bounded time for the engine to count want replies
// sent (it counts a reply after it left, so a client may see it first)
// and returns the counters.
func WaitSent(e *engine.Engine, want uint64) engine.Counters {
	c := e.Counters()
	for deadline := time.Now().Add(10 * time.Second); c.Sent < want && time.Now().Before(deadline); c = e.Counters() {
		runtime.Gosched()
	}
	return c
}
