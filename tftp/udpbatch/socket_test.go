package udpbatch

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func loopbackPeer(t *testing.T) *net.UDPConn {
	t.Helper()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return peer
}

// socketPair returns two loopback Sockets connected to each other.
func socketPair(t *testing.T) (a, b *Socket) {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	b, err := NewSocket(lo, lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a, err = DialSocket(lo, b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := b.Connect(a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestSocketRoundTrip: a connected Socket sends to its peer, receives its
// answer in a blocking read, and reports a timeout as
// os.ErrDeadlineExceeded after about the time asked for.
func TestSocketRoundTrip(t *testing.T) {
	peer := loopbackPeer(t)
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	s, err := DialSocket(netip.MustParseAddr("127.0.0.1"), peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if la := s.LocalAddr(); la.Addr() != netip.MustParseAddr("127.0.0.1") || la.Port() == 0 {
		t.Fatalf("LocalAddr %v", la)
	}
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "ping" || from != s.LocalAddr() {
		t.Fatalf("peer got %q from %v (%v), want ping from %v", buf[:n], from, err, s.LocalAddr())
	}
	// Nothing queued: TryRecv returns at once.
	if n, err := s.TryRecv(buf); n != 0 || err != nil {
		t.Fatalf("TryRecv on an empty socket = %d, %v", n, err)
	}
	peer.WriteToUDPAddrPort([]byte("pong"), from)
	n, err = s.Recv(buf, 2*time.Second)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("Recv = %q, %v", buf[:n], err)
	}
	start := time.Now()
	n, err = s.Recv(buf, 30*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 {
		t.Fatalf("Recv with nothing sent = %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("timeout error %v is not a net.Error timeout", err)
	}
	if waited := time.Since(start); waited < 25*time.Millisecond {
		t.Fatalf("Recv gave up after %v, asked 30ms", waited)
	}
	s.Close()
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write on a closed socket succeeded")
	}
	if _, err := s.Recv(buf, time.Millisecond); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Recv on a closed socket = %v", err)
	}
}

// TestSocketUnconnected: an unconnected Socket learns its peer from
// RecvFrom and answers with WriteTo.
func TestSocketUnconnected(t *testing.T) {
	peer := loopbackPeer(t)
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	s, err := NewSocket(netip.Addr{}, peerAddr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteTo([]byte("rrq"), peerAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "rrq" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	peer.WriteToUDPAddrPort([]byte("oack"), from)
	n, src, err := s.RecvFrom(buf, 2*time.Second)
	if err != nil || string(buf[:n]) != "oack" || src != peerAddr {
		t.Fatalf("RecvFrom = %q from %v, %v; want oack from %v", buf[:n], src, err, peerAddr)
	}
}

// TestSocketSenderReceiver runs a GSO batch from a Sender on one Socket to
// a Receiver on another: the receiver blocks until the batch arrives, and
// times out with os.ErrDeadlineExceeded when nothing does.
func TestSocketSenderReceiver(t *testing.T) {
	const stride = 4 + 100
	txSock, rxSock := socketPair(t)
	for _, m := range []Method{GSO, Sendmmsg, Plain} {
		t.Run(m.String(), func(t *testing.T) {
			tx, err := NewSocketSender(txSock, netip.AddrPort{}, stride, 8, m)
			if err != nil {
				t.Fatal(err)
			}
			rx := NewSocketReceiver(rxSock, 8, stride)
			var batch []byte
			for i := 0; i < 5; i++ {
				batch = append(batch, bytes.Repeat([]byte{byte('a' + i)}, stride)...)
			}
			batch = batch[:len(batch)-30] // the last datagram is short
			if err := tx.Send(batch); err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for len(got) < 5 {
				if err := rxSock.RecvTimeout(2 * time.Second); err != nil {
					t.Fatal(err)
				}
				n, err := rx.Recv()
				if err != nil {
					t.Fatalf("Recv after %d datagrams: %v", len(got), err)
				}
				for i := 0; i < n; i++ {
					got = append(got, append([]byte(nil), rx.Packet(i)...))
				}
			}
			for i, g := range got {
				want := batch[i*stride : min((i+1)*stride, len(batch))]
				if !bytes.Equal(g, want) {
					t.Fatalf("datagram %d: %d bytes %q..., want %d bytes %q...", i, len(g), g[:1], len(want), want[:1])
				}
			}
			if tx.Method() != m {
				t.Fatalf("fell back from %v to %v", m, tx.Method())
			}
			rxSock.RecvTimeout(20 * time.Millisecond)
			if n, err := rx.Recv(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Recv with nothing sent = %d, %v", n, err)
			}
		})
	}
}

// TestSocketZeroAllocs: a blocking round of batch send and receive
// allocates nothing.
func TestSocketZeroAllocs(t *testing.T) {
	const stride = 4 + 1468
	txSock, rxSock := socketPair(t)
	tx, err := NewSocketSender(txSock, netip.AddrPort{}, stride, 16, GSO)
	if err != nil {
		t.Fatal(err)
	}
	rx := NewSocketReceiver(rxSock, 16, stride)
	hdr := make([]byte, 4)
	payload := make([]byte, 16*1468)
	iovs := make([]unix.Iovec, 32)
	for i := 0; i < 16; i++ {
		iovs[2*i].Base, iovs[2*i+1].Base = &hdr[0], &payload[i*1468]
		iovs[2*i].SetLen(4)
		iovs[2*i+1].SetLen(1468)
	}
	if err := rxSock.RecvTimeout(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	round := func() {
		if err := tx.SendVec(iovs, 2); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 16; {
			n, err := rx.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	round()
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Fatalf("%v allocations per blocking batch round, want 0", n)
	}
}

// TestSocketSignalEndsWait: a signal to the waiting thread ends a blocking
// read early with os.ErrDeadlineExceeded (the caller then checks its own
// deadline) instead of restarting the whole timeout.
func TestSocketSignalEndsWait(t *testing.T) {
	_, rxSock := socketPair(t)
	rx := NewSocketReceiver(rxSock, 4, 2048)
	buf := make([]byte, 64)
	for _, name := range []string{"Recv", "Receiver"} {
		t.Run(name, func(t *testing.T) {
			tids := make(chan int, 1)
			done := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				tids <- unix.Gettid()
				if name == "Recv" {
					_, err := rxSock.Recv(buf, 10*time.Second)
					done <- err
					return
				}
				rxSock.RecvTimeout(10 * time.Second)
				_, err := rx.Recv()
				done <- err
			}()
			tid := <-tids
			for i := 0; ; i++ {
				// SIGURG is Go's own preemption signal: harmless to the
				// runtime, and it interrupts the wait once the thread sleeps.
				unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
				select {
				case err := <-done:
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("wait ended by a signal returned %v, want os.ErrDeadlineExceeded", err)
					}
					return
				case <-time.After(20 * time.Millisecond):
				}
				if i == 100 {
					t.Fatal("a blocking read with a 10 s timeout did not end when signaled for 2 s")
				}
			}
		})
	}
}

// TestSocketIPv6: a Socket works over IPv6 loopback, and IPv6 zones map to
// interface indexes and back as package net names them.
func TestSocketIPv6(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	b, err := NewSocket(lo6, lo6)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := DialSocket(lo6, b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Write([]byte("v6")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := b.RecvFrom(buf, 2*time.Second)
	if err != nil || string(buf[:n]) != "v6" || from != a.LocalAddr() {
		t.Fatalf("RecvFrom = %q from %v, %v; want v6 from %v", buf[:n], from, err, a.LocalAddr())
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		zone string
		idx  uint32
	}{{"", 0}, {"lo", uint32(lo.Index)}, {"4242", 4242}} {
		if got := zoneIndex(tc.zone); got != tc.idx {
			t.Errorf("zoneIndex(%q) = %d, want %d", tc.zone, got, tc.idx)
		}
	}
	if got := zoneName(uint32(lo.Index)); got != "lo" {
		t.Errorf("zoneName(%d) = %q, want lo", lo.Index, got)
	}
	if got := zoneName(4242); got != "4242" {
		t.Errorf("zoneName(4242) = %q", got)
	}
	sa := sockaddr(netip.MustParseAddrPort("[fe80::1%lo]:69"), unix.AF_INET6).(*unix.SockaddrInet6)
	if sa.ZoneId != uint32(lo.Index) {
		t.Errorf("link-local sockaddr zone %d, want %d", sa.ZoneId, lo.Index)
	}
}
