package tftp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

// newTestSession opens name under root and builds a session towards a
// local peer socket, as the listener would after negotiation. blocking
// picks the session's transport: a blocking Socket, or the poller's conn.
func newTestSession(t *testing.T, root, name string, blksize, window int, method udpbatch.Method, blocking bool) (*session, *net.UDPConn) {
	t.Helper()
	src, err := NewDirSource(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	cfg := Config{Source: src, SendMethod: method, BlockingSessions: -1}
	if blocking {
		cfg.BlockingSessions = 1
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	f, err := srv.files.open(src, name)
	if err != nil {
		t.Fatal(err)
	}
	var opts codec.Options
	opts.SetBlksize(int64(blksize))
	opts.SetWindowsize(int64(window))
	sess, err := srv.newSession(context.Background(), nil, peer.LocalAddr().(*net.UDPAddr).AddrPort(),
		netip.MustParseAddr("127.0.0.1"), name, f, nil, &opts)
	if err != nil || sess == nil {
		t.Fatalf("newSession: %v", err)
	}
	t.Cleanup(func() { sess.closeConn(); srv.files.release(f) })
	if (sess.sock != nil) != blocking {
		t.Fatalf("session on a blocking socket: %v, want %v", sess.sock != nil, blocking)
	}
	return sess, peer
}

// TestSteadyStateZeroAllocs guards the per-DATA-packet path: fill a window
// from the file, send it in one batch, receive the client's ACK.
func TestSteadyStateZeroAllocs(t *testing.T) {
	root := t.TempDir()
	writeRandomFile(t, root, "big.bin", 64<<20)
	type mode struct {
		method   udpbatch.Method
		copied   bool // payloads read into the session's buffer instead of sent from the mapping
		blocking bool // ACKs read on a blocking Socket instead of through the poller
	}
	for _, md := range []mode{
		{udpbatch.GSO, false, false}, {udpbatch.Sendmmsg, false, false}, {udpbatch.GSO, true, false}, {udpbatch.Plain, true, false},
		{udpbatch.GSO, false, true}, {udpbatch.Sendmmsg, false, true}, {udpbatch.Plain, true, true},
	} {
		m := md.method
		t.Run(fmt.Sprintf("%v/copied=%v/blocking=%v", m, md.copied, md.blocking), func(t *testing.T) {
			sess, peer := newTestSession(t, root, "big.bin", 1468, 16, m, md.blocking)
			if md.copied && sess.vec != nil {
				// As for a FileSource without a descriptor.
				sess.vec, sess.hdrs = nil, nil
				for i := range sess.wins {
					sess.wins[i].b = make([]byte, sess.window*sess.stride)
				}
				sess.iovs = make([]unix.Iovec, sess.window)
			}
			if (sess.vec == nil) != md.copied {
				t.Fatalf("session copies payloads: %v, want %v", sess.vec == nil, md.copied)
			}
			if sess.sender.Method() != m {
				t.Fatalf("sender uses %v", sess.sender.Method())
			}
			sessAddr := sess.localAddr()
			rbuf := make([]byte, 65536)
			ack := make([]byte, 0, 4)
			base := int64(1)
			ctx := context.Background()
			step := func() {
				end := base + 16
				if err := sess.sendBlocks(base, end); err != nil {
					t.Fatal(err)
				}
				if err := sess.prefetch(end); err != nil { // the next window, read while the ACK travels
					t.Fatal(err)
				}
				for i := 0; i < 16; i++ {
					peer.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, _, err := peer.ReadFromUDPAddrPort(rbuf)
					if err != nil || n != 1472 {
						t.Fatalf("packet %d of window at %d: %d bytes, %v", i, base, n, err)
					}
				}
				peer.WriteToUDPAddrPort(codec.AppendAck(ack[:0], uint16(end-1)), sessAddr)
				got, err := sess.waitAck(ctx, base, end, time.Now().Add(2*time.Second))
				if err != nil || got != end-1 {
					t.Fatalf("waitAck = %d, %v; want %d", got, err, end-1)
				}
				base = end
			}
			step() // warm up
			if n := testing.AllocsPerRun(100, step); n != 0 {
				t.Fatalf("%v allocations per window of 16 DATA packets, want 0", n)
			}
			if sess.sender.Datagrams < 16*100 {
				t.Fatalf("sent only %d datagrams", sess.sender.Datagrams)
			}
			// One system call per window with GSO and sendmmsg.
			if m != udpbatch.Plain && sess.sender.Syscalls > sess.sender.Datagrams/16 {
				t.Fatalf("%d send syscalls for %d datagrams", sess.sender.Syscalls, sess.sender.Datagrams)
			}
		})
	}
}

// TestBeyond4GiB reads blocks past the 4 GiB mark of a sparse file, where
// 32-bit offsets and 16-bit block numbers would both have wrapped.
func TestBeyond4GiB(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "huge.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 5<<30 + 777
	marker := []byte("peerboot-beyond-4GiB")
	markerOff := int64((4<<30)/1468+12345) * 1468 // block-aligned, past 4 GiB
	if _, err := f.WriteAt(marker, markerOff); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sess, peer := newTestSession(t, root, "huge.img", 1468, 4, udpbatch.Auto, true)
	if sess.nblocks != size/1468+1 {
		t.Fatalf("nblocks %d", sess.nblocks)
	}
	blk := markerOff/1468 + 1 // block holding the marker
	if err := sess.sendBlocks(blk, blk+1); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	d, err := codec.ParseData(buf[:n])
	if err != nil || d.Block != uint16(blk) || string(d.Payload[:len(marker)]) != string(marker) {
		t.Fatalf("block %d: %v, block field %d, payload starts %q", blk, err, d.Block, d.Payload[:len(marker)])
	}
	// The last block is the short one at the end of the file.
	last := sess.nblocks
	if err := sess.sendBlocks(last, last+1); err != nil {
		t.Fatal(err)
	}
	n, _, err = peer.ReadFromUDP(buf)
	if err != nil || n != 4+int(size%1468) {
		t.Fatalf("last block: %d bytes, %v; want %d", n, err, 4+size%1468)
	}
}

// TestSinglePortMode downloads through the listening port only.
func TestSinglePortMode(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(t, root, "sp.bin", 3<<20+5)
	_, addr, stats := startServer(t, root, func(c *Config) { c.SinglePort = true })
	out := filepath.Join(t.TempDir(), "sp.out")
	for _, c := range realClients {
		if c.name != "atftp" && c.name != "peerboot-client" {
			continue
		}
		if err := c.get(context.Background(), addr, f.name, out, 1468); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := fileSHA256(t, out); got != f.sum {
			t.Fatalf("%s: sha256 mismatch", c.name)
		}
		st := <-stats.ch
		if st.Outcome != OutcomeComplete || st.Windowsize != 16 {
			t.Fatalf("%s: stats %+v", c.name, st)
		}
	}
}

// TestFileTruncatedWhileServing: payloads are sent from a mapping of the
// file, which only the kernel reads; a file cut short under a transfer
// makes the send fail with an error (EFAULT), never a fault in the server.
func TestFileTruncatedWhileServing(t *testing.T) {
	root := t.TempDir()
	writeRandomFile(t, root, "shrinks.bin", 1<<20)
	sess, _ := newTestSession(t, root, "shrinks.bin", 1468, 16, udpbatch.GSO, false)
	if sess.vec == nil {
		t.Fatal("the session does not send from the file mapping")
	}
	if err := sess.sendBlocks(1, 17); err != nil {
		t.Fatalf("before truncation: %v", err)
	}
	if err := os.Truncate(filepath.Join(root, "shrinks.bin"), 0); err != nil {
		t.Fatal(err)
	}
	err := sess.sendBlocks(600, 616) // pages past the new end of file
	if err == nil {
		t.Fatal("sending blocks of a truncated file succeeded")
	}
	t.Logf("send after truncation: %v", err)
}
