package reliability

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp"
)

// fuzzServer is one in-process TFTP server shared by the fuzz executions,
// with short timers so abandoned transfers end quickly.
var fuzzServer struct {
	once sync.Once
	addr *net.UDPAddr
	file []byte
	srv  *tftp.Server
	err  error
}

func sessionServer(tb testing.TB) (*net.UDPAddr, []byte, *tftp.Server) {
	fuzzServer.once.Do(func() {
		dir, err := os.MkdirTemp("", "peerboot-fuzz-tftp-")
		if err != nil {
			fuzzServer.err = err
			return
		}
		fuzzServer.file = make([]byte, 5000)
		for i := range fuzzServer.file {
			fuzzServer.file[i] = byte(i*31 + i>>8)
		}
		if err := os.WriteFile(filepath.Join(dir, "f.bin"), fuzzServer.file, 0o644); err != nil {
			fuzzServer.err = err
			return
		}
		src, err := tftp.NewDirSource(dir)
		if err != nil {
			fuzzServer.err = err
			return
		}
		srv, err := tftp.New(tftp.Config{Source: src, Timeout: 30 * time.Millisecond, Retries: 2, MaxSessions: 256,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			fuzzServer.err = err
			return
		}
		conn, err := tftp.Listen("127.0.0.1:0")
		if err != nil {
			fuzzServer.err = err
			return
		}
		go srv.Serve(context.Background(), conn) // lives as long as the test process
		fuzzServer.addr, fuzzServer.srv = conn.LocalAddr().(*net.UDPAddr), srv
	})
	if fuzzServer.err != nil {
		tb.Fatal(fuzzServer.err)
	}
	return fuzzServer.addr, fuzzServer.file, fuzzServer.srv
}

// clientPorts hands each fuzz execution a loopback port of its own. An
// earlier execution's abandoned session may still be resending to its
// client's port for a while; a new client bound to that port would take
// those packets for its own. Each fuzzing worker (a process) cycles
// through 1,000 ports of a block picked by its PID, so a port comes back
// only after about 500 executions (tens of seconds, far longer than an
// abandoned session lives) and workers started together use different
// blocks.
var clientPorts struct {
	sync.Mutex
	next int
}

func freshClient(tb testing.TB) *net.UDPConn {
	clientPorts.Lock()
	defer clientPorts.Unlock()
	base := 30000 + (os.Getpid()%16)*1000
	for range 1000 {
		port := base + clientPorts.next%1000
		clientPorts.next++
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			return c
		}
		// taken by some other socket on this machine: try the next one
	}
	tb.Fatalf("no free loopback port in %d..%d", base, base+999)
	return nil
}

// checkData fails if a DATA packet does not carry exactly the file's bytes
// for its block number.
func checkData(t *testing.T, pkt []byte, file []byte, blksize int) {
	d, err := codec.ParseData(pkt)
	if err != nil {
		return
	}
	if d.Block == 0 {
		t.Fatalf("DATA block 0")
	}
	start := (int(d.Block) - 1) * blksize
	if start > len(file) {
		t.Fatalf("DATA block %d beyond the %d-byte file (blksize %d)", d.Block, len(file), blksize)
	}
	end := min(start+blksize, len(file))
	if !bytes.Equal(d.Payload, file[start:end]) {
		t.Fatalf("DATA block %d carries %d bytes that are not the file's bytes %d..%d", d.Block, len(d.Payload), start, end)
	}
}

// FuzzTFTPSession drives the TFTP server's transfer state machine with a
// read request (blksize and windowsize from the fuzzer) followed by
// whatever packets the fuzzer makes (ACKs of any block, ERRORs, duplicate
// requests, garbage), sent to the transfer's port. The server must never
// panic or hang, and every DATA packet it sends must carry the file's
// bytes for its block number, whatever the acknowledgements said.
//
// The seed corpus runs with the package's tests; fuzz it with
//
//	go test -run '^$' -fuzz '^FuzzTFTPSession$' -fuzztime 10m -parallel 1 ./reliability
func FuzzTFTPSession(f *testing.F) {
	ack := func(b ...uint16) []byte {
		var out []byte
		for _, n := range b {
			out = append(out, 4, 0, byte(codec.OpACK), byte(n>>8), byte(n))
		}
		return out
	}
	f.Add(uint16(512), uint8(1), ack(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
	f.Add(uint16(1024), uint8(4), ack(0, 4, 2, 5))
	f.Add(uint16(8), uint8(16), ack(0, 65535, 0, 700, 1))
	f.Add(uint16(0), uint8(0), append(ack(1, 1, 1), 5, 0, 5, 0, 0, 0))
	f.Add(uint16(1428), uint8(8), []byte{9, 0, 1, 'f', '.', 'b', 'i', 'n', 0, 0})
	f.Add(uint16(512), uint8(2), []byte{2, 0, 3, 0, 0, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, blksize uint16, window uint8, script []byte) {
		addr, file, srv := sessionServer(t)
		c := freshClient(t)
		defer c.Close()
		req := codec.Request{Opcode: codec.OpRRQ, Filename: []byte("f.bin"), Mode: codec.ModeOctet}
		if blksize != 0 {
			req.SetBlksize(int64(blksize))
		}
		if window != 0 {
			req.SetWindowsize(int64(window))
		}
		rrq, err := codec.AppendRequest(nil, &req)
		if err != nil {
			return // options the codec refuses to encode
		}
		if _, err := c.WriteToUDP(rrq, addr); err != nil {
			t.Fatal(err)
		}
		bs := 512
		buf := make([]byte, 70000)
		var tid *net.UDPAddr
		read := func(wait time.Duration) bool {
			c.SetReadDeadline(time.Now().Add(wait))
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return false
			}
			pkt := buf[:n]
			if tid == nil {
				tid = from
			} else if from.Port != tid.Port {
				return true // another transfer's packet: not ours to check (RFC 1350 TIDs)
			}
			if op, err := codec.PacketOpcode(pkt); err == nil && op == codec.OpOACK {
				var o codec.Options
				if codec.ParseOACK(pkt, &o) == nil && o.Has(codec.OptBlksize) {
					bs = int(o.Blksize)
				}
			}
			checkData(t, pkt, file, bs)
			return true
		}
		if !read(time.Second) {
			t.Fatalf("no answer to %q", rrq)
		}
		// The script: packets of 1-byte length + body, sent to the
		// transfer's port, each followed by a short look at the replies.
		for len(script) > 0 {
			n := int(script[0])
			script = script[1:]
			n = min(n, len(script))
			pkt := script[:n]
			script = script[n:]
			c.WriteToUDP(pkt, tid)
			for read(2 * time.Millisecond) {
			}
		}
		for read(5 * time.Millisecond) {
		}
		// Still serving: a fresh client gets the first block at once.
		probe := freshClient(t)
		defer probe.Close()
		probe.WriteToUDP(append([]byte{0, byte(codec.OpRRQ)}, "f.bin\x00octet\x00"...), addr)
		probe.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := probe.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("server stopped answering (counters %+v)", srv.Counters())
		}
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint16(buf[:2]) != uint16(codec.OpDATA) {
			if e, err := codec.ParseError(buf[:n]); err == nil && string(e.Message) == "server busy" {
				return // the fuzzer's abandoned sessions fill the table for a moment
			}
			t.Fatalf("fresh request answered with %q", buf[:n])
		}
		bs = 512
		checkData(t, buf[:n], file, 512)
	})
}
