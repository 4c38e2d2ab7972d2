package udpbatch

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSendVecEveryMethod gathers datagrams from header and payload iovecs
// with each method and checks that the peer receives exactly them, the
// last one shorter, in order.
func TestSendVecEveryMethod(t *testing.T) {
	const stride = 4 + 100
	for _, m := range []Method{GSO, Sendmmsg, Plain} {
		t.Run(m.String(), func(t *testing.T) {
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			conn, err := net.DialUDP("udp4", nil, peer.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			s, err := NewSender(conn, netip.AddrPort{}, stride, 8, m)
			if err != nil {
				t.Fatal(err)
			}
			payload := bytes.Repeat([]byte("0123456789"), 60)
			lens := []int{100, 100, 100, 37} // the last datagram is short
			hdrs := make([]byte, 4*len(lens))
			iovs := make([]unix.Iovec, 0, 2*len(lens))
			var want [][]byte
			off := 0
			for i, l := range lens {
				h := hdrs[4*i : 4*i+4]
				copy(h, fmt.Sprintf("H%03d", i))
				p := payload[off : off+l]
				off += l
				iovs = append(iovs, unix.Iovec{Base: &h[0]}, unix.Iovec{Base: &p[0]})
				iovs[2*i].SetLen(4)
				iovs[2*i+1].SetLen(l)
				want = append(want, append(append([]byte(nil), h...), p...))
			}
			if err := s.SendVec(iovs, 2); err != nil {
				t.Fatalf("SendVec: %v", err)
			}
			buf := make([]byte, 2048)
			for i, w := range want {
				peer.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := peer.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], w) {
					t.Fatalf("datagram %d: %q, want %q", i, buf[:n], w)
				}
			}
			if s.Datagrams != uint64(len(lens)) {
				t.Fatalf("Datagrams %d, want %d", s.Datagrams, len(lens))
			}
			if s.Method() != m {
				t.Fatalf("fell back from %v to %v on loopback", m, s.Method())
			}
			if m != Plain && s.Syscalls != 1 {
				t.Fatalf("%d system calls for one batch with %v", s.Syscalls, s.Method())
			}
			if err := s.SendVec(iovs[:3], 2); err == nil {
				t.Fatal("SendVec accepted a partial datagram")
			}
		})
	}
}
