package tftp

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossyRelay is a lossy, reordering UDP path on loopback. The client talks
// to front; the relay talks to the server from back, learns the server's
// transfer port from its first reply and forwards both ways, dropping a
// share of the datagrams, sending a share twice and swapping some with the
// next one.
type lossyRelay struct {
	front, back *net.UDPConn
	server      netip.AddrPort
	client      atomic.Value // netip.AddrPort
	serverTID   atomic.Value // netip.AddrPort
	dropped     atomic.Int64
	reordered   atomic.Int64
	duplicated  atomic.Int64
	dup         float64
	wg          sync.WaitGroup
}

func newLossyRelay(t *testing.T, server string, loss, reorder, dup float64) *lossyRelay {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	front, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{front: front, back: back, server: netip.MustParseAddrPort(server), dup: dup}
	r.wg.Add(2)
	go r.pump(front, back, func() (netip.AddrPort, bool) {
		if tid, ok := r.serverTID.Load().(netip.AddrPort); ok {
			return tid, true
		}
		return r.server, true
	}, func(from netip.AddrPort) { r.client.Store(from) }, loss, reorder, 1)
	go r.pump(back, front, func() (netip.AddrPort, bool) {
		c, ok := r.client.Load().(netip.AddrPort)
		return c, ok
	}, func(from netip.AddrPort) {
		if from != r.server {
			r.serverTID.Store(from)
		}
	}, loss, reorder, 2)
	t.Cleanup(func() { front.Close(); back.Close(); r.wg.Wait() })
	return r
}

func (r *lossyRelay) pump(in, out *net.UDPConn, dst func() (netip.AddrPort, bool), learn func(netip.AddrPort),
	loss, reorder float64, seed uint64) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 65536)
	var held []byte
	flush := func() {
		if held != nil {
			if d, ok := dst(); ok {
				out.WriteToUDPAddrPort(held, d)
			}
			held = nil
		}
	}
	for {
		if held != nil {
			in.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
		} else {
			in.SetReadDeadline(time.Time{})
		}
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				flush()
				continue
			}
			return // closed
		}
		learn(from)
		if rng.Float64() < loss {
			r.dropped.Add(1)
			continue
		}
		d, ok := dst()
		if !ok {
			continue
		}
		if held == nil && rng.Float64() < reorder {
			held = append([]byte(nil), buf[:n]...) // sent after the next datagram
			r.reordered.Add(1)
			continue
		}
		out.WriteToUDPAddrPort(buf[:n], d)
		if r.dup > 0 && rng.Float64() < r.dup {
			out.WriteToUDPAddrPort(buf[:n], d)
			r.duplicated.Add(1)
		}
		flush()
	}
}
