package tftp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerboot/peerboot/tftp/client"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

// lossyRelay is a lossy, reordering UDP path on loopback. The client talks
// to front; the relay talks to the server from back, learns the server's
// transfer port from its first reply and forwards both ways, dropping a
// share of the datagrams and swapping some with the next one.
type lossyRelay struct {
	front, back *net.UDPConn
	server      netip.AddrPort
	client      atomic.Value // netip.AddrPort
	serverTID   atomic.Value // netip.AddrPort
	dropped     atomic.Int64
	reordered   atomic.Int64
	wg          sync.WaitGroup
}

func newLossyRelay(t *testing.T, server string, loss, reorder float64) *lossyRelay {
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
	r := &lossyRelay{front: front, back: back, server: netip.MustParseAddrPort(server)}
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
		flush()
	}
}

// TestLossyPath downloads 50 MiB through a path that drops 5% of the
// datagrams in each direction and reorders 5%. The file must arrive intact
// and the server must send less than 1.5x its size. (The kernel here has no
// sch_netem, so the lossy path is a relay on loopback; GSO trains reach it
// as separate datagrams, so loss hits single DATA packets.)
var lossSize int64 = 50 << 20

func TestLossyPath(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(t, root, "lossy.bin", lossSize)
	for _, m := range []udpbatch.Method{udpbatch.GSO, udpbatch.Sendmmsg} {
		t.Run(m.String(), func(t *testing.T) {
			_, addr, stats := startServer(t, root, func(c *Config) { c.SendMethod = m })
			relay := newLossyRelay(t, addr, 0.05, 0.05)
			out := filepath.Join(t.TempDir(), "lossy.out")
			fh, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := client.Get(ctx, relay.front.LocalAddr().String(), f.name, fh,
				client.Options{Blksize: 1468, Windowsize: 16, Tsize: true, Timeout: 200 * time.Millisecond, Retries: 20})
			fh.Close()
			if err != nil {
				t.Fatalf("download through the lossy path: %v", err)
			}
			if got := fileSHA256(t, out); got != f.sum {
				t.Fatalf("sha256 %s, want %s", got, f.sum)
			}
			var st TransferStats
			select {
			case st = <-stats.ch:
			case <-time.After(10 * time.Second):
				t.Fatal("no transfer statistics")
			}
			ratio := float64(st.SentBytes) / float64(f.size)
			t.Logf("%v: %d bytes in %v, relay dropped %d and reordered %d datagrams; server sent %.3fx the file, %d DATA retransmits; client resent %d ACKs",
				m, res.Bytes, res.Duration.Round(time.Millisecond), relay.dropped.Load(), relay.reordered.Load(), ratio, st.Retransmits, res.AcksResent)
			t.Logf("server: %d timeouts, %d windows restarted on a reported gap", st.Timeouts, st.GapRestarts)
			if st.Outcome != OutcomeComplete || st.Retransmits == 0 || relay.dropped.Load() < 1000 {
				t.Fatalf("stats %+v: want a complete transfer that needed retransmissions", st)
			}
			if ratio >= 1.5 {
				t.Fatalf("server sent %.3fx the file size, want < 1.5x", ratio)
			}
		})
	}
}
