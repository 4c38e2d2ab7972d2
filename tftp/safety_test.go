package tftp

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
)

// rawRequest sends pkt from a fresh socket and returns the first reply, or
// nil when nothing arrives within wait.
func rawRequest(t *testing.T, addr string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp4", addr)
	if _, err := c.WriteToUDP(pkt, ua); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func rrq(name, mode string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(codec.OpRRQ))
	b = append(append(b, name...), 0)
	return append(append(b, mode...), 0)
}

func TestHostileNamesAndMalformedPackets(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	good := writeRandomFile(t, root, "Boot/x64/BCD", 3000)
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "leak")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("Boot/x64/BCD", filepath.Join(root, "inside")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "null"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Fatalf("mknod (the test runs as root): %v", err)
	}
	srv, addr, _ := startServer(t, root, nil)

	wrq := rrq("upload.bin", "octet")
	wrq[1] = byte(codec.OpWRQ)
	cases := []struct {
		name string
		pkt  []byte
		code codec.ErrorCode
	}{
		{"dotdot", rrq("../../etc/passwd", "octet"), codec.ErrCodeAccessViolation},
		{"dotdot backslash", rrq(`Boot\..\..\etc\passwd`, "octet"), codec.ErrCodeAccessViolation},
		{"absolute outside root", rrq("/etc/passwd", "octet"), codec.ErrCodeFileNotFound},
		{"symlink leaving root", rrq("leak", "octet"), codec.ErrCodeAccessViolation},
		{"directory", rrq("dir", "octet"), codec.ErrCodeFileNotFound},
		{"fifo", rrq("fifo", "octet"), codec.ErrCodeAccessViolation},
		{"device", rrq("null", "octet"), codec.ErrCodeAccessViolation},
		{"missing", rrq("nope.efi", "octet"), codec.ErrCodeFileNotFound},
		{"write request", wrq, codec.ErrCodeAccessViolation},
		{"netascii", rrq("Boot/x64/BCD", "netascii"), codec.ErrCodeIllegalOperation},
		{"bad option value", append(rrq("Boot/x64/BCD", "octet"), "blksize\x00big\x00"...), codec.ErrCodeOptionNegotiation},
		{"blksize below 8", append(rrq("Boot/x64/BCD", "octet"), "blksize\x004\x00"...), codec.ErrCodeOptionNegotiation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := rawRequest(t, addr, tc.pkt, 2*time.Second)
			e, err := codec.ParseError(reply)
			if err != nil {
				t.Fatalf("reply %q is not an ERROR: %v", reply, err)
			}
			if e.Code != tc.code {
				t.Fatalf("ERROR %d %q, want code %d", e.Code, e.Message, tc.code)
			}
		})
	}
	// Malformed packets get no answer and are counted.
	malformed := [][]byte{{0}, {0, 9, 1, 2}, []byte("\x00\x01noterminator"), []byte("\x00\x01\x00octet\x00"),
		[]byte("\x00\x04\x00\x01"), []byte("\x00\x01f\x00octet\x00blksize\x00")}
	before := srv.Counters().Malformed
	for _, p := range malformed {
		if reply := rawRequest(t, addr, p, 100*time.Millisecond); reply != nil {
			t.Errorf("malformed %q answered with %q", p, reply)
		}
	}
	if got := srv.Counters().Malformed - before; got != uint64(len(malformed)) {
		t.Errorf("malformed counter rose by %d, want %d", got, len(malformed))
	}
	// The server still serves, with Windows-style and case-folded names,
	// and through a symlink that stays inside the root.
	for _, name := range []string{`\boot\X64\bcd`, "BOOT/x64/BCD", "inside"} {
		reply := rawRequest(t, addr, rrq(name, "octet"), 2*time.Second)
		d, err := codec.ParseData(reply)
		if err != nil || d.Block != 1 || len(d.Payload) != 512 {
			t.Fatalf("%s: first reply %q (%v), want DATA 1 of 512 bytes", name, reply, err)
		}
	}
	_ = good
}

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want string }{
		{`\Boot\x64\BCD`, "Boot/x64/BCD"},
		{"/pxelinux.0", "pxelinux.0"},
		{"a//b/./c", "a/b/c"},
	}
	for _, tc := range tests {
		if got, err := CleanName(tc.in); err != nil || got != tc.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"..", "a/../b", `a\..\b`, "a\x00b", "/", ""} {
		if _, err := CleanName(bad); err == nil {
			t.Errorf("CleanName(%q) accepted", bad)
		}
	}
}

// TestBusyAndTimeout: with MaxSessions 1, a client that never ACKs holds
// the only slot, a second request gets "server busy", and the silent
// client's session ends with a timeout after its retries.
func TestBusyAndTimeout(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	writeRandomFile(t, root, "f.bin", 100000)
	srv, addr, stats := startServer(t, root, func(c *Config) {
		c.MaxSessions = 1
		c.Timeout = 50 * time.Millisecond
		c.Retries = 2
	})
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ua, _ := net.ResolveUDPAddr("udp4", addr)
	silent.WriteToUDP(rrq("f.bin", "octet"), ua)
	buf := make([]byte, 2048)
	silent.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err := silent.ReadFromUDP(buf); err != nil || n != 516 {
		t.Fatalf("first transfer did not start: %v", err)
	}
	reply := rawRequest(t, addr, rrq("f.bin", "octet"), 2*time.Second)
	e, err := codec.ParseError(reply)
	if err != nil || e.Code != codec.ErrCodeNotDefined || string(e.Message) != "server busy" {
		t.Fatalf("second request got %q (%v), want ERROR 0 server busy", reply, err)
	}
	if srv.Counters().Busy != 1 {
		t.Fatalf("busy counter %d", srv.Counters().Busy)
	}
	select {
	case st := <-stats.ch:
		if st.Outcome != OutcomeTimeout || st.Bytes != 0 {
			t.Fatalf("silent client's transfer: %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("silent client's session never gave up")
	}
	// The silent client gets a final ERROR after the retransmissions.
	sawError := false
	for !sawError {
		silent.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := silent.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if op, _ := codec.PacketOpcode(buf[:n]); op == codec.OpERROR {
			sawError = true
		}
	}
	if !sawError {
		t.Fatal("no ERROR sent to the client that stopped ACKing")
	}
	// The session leaves the active count as its goroutine ends, just
	// after the ERROR and the statistics: wait for that, bounded.
	for deadline := time.Now().Add(2 * time.Second); srv.Counters().Active != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still active", srv.Counters().Active)
		}
		runtime.Gosched()
	}
}
