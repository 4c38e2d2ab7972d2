package reliability

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
)

// rrqPacket builds a read request without going through the codec's
// checks, so a test can put anything in the name.
func rrqPacket(name string) []byte {
	b := []byte{0, byte(codec.OpRRQ)}
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, "octet"...)
	return append(b, 0)
}

// askOnce sends one packet from a fresh socket and returns the first reply
// (nil after wait).
func askOnce(t *testing.T, server string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDP(pkt, raddr); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 70000)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestHostileNamesRefused asks a real `peerboot tftp serve` process for
// names that must never reach a file outside the root or a device, and
// checks the ERROR code of each answer. A secret file beside the root and
// device names of Windows must never be served.
func TestHostileNamesRefused(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := []byte("secret outside the TFTP root\n")
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ok.bin"), bytes.Repeat([]byte{7}, 700), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"escape":       "../secret.txt", // relative symlink out of the root
		"abs-escape":   filepath.Join(base, "secret.txt"),
		"sub/up":       "../../secret.txt", // from a subdirectory
		"dirlink":      base,               // a directory link out of the root
		"devnull-link": "/dev/null",
		"devzero-link": "/dev/zero",
		"NUL":          "/dev/null", // a Windows device name that is a symlink to a device
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mknod(filepath.Join(root, "zero"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
		t.Fatalf("mknod /dev/zero twin (the test runs as root): %v", err)
	}
	_, addr := startTFTP(t, root)

	const (
		notFound = codec.ErrCodeFileNotFound
		access   = codec.ErrCodeAccessViolation
	)
	type tc struct {
		name string
		code codec.ErrorCode
	}
	cases := []tc{
		{"../secret.txt", access},
		{"../../../../../../etc/passwd", access},
		{"sub/../../secret.txt", access},
		{`..\secret.txt`, access},
		{`sub\..\..\secret.txt`, access},
		{"/../secret.txt", access},
		{"./../secret.txt", access},
		{"escape", access},
		{"abs-escape", access},
		{"sub/up", access},
		{"dirlink/secret.txt", access},
		{"devnull-link", access},
		{"devzero-link", access},
		{"zero", access},
		{"NUL", access},
		{"/etc/passwd", notFound}, // rooted in the TFTP root, where there is none
		{filepath.Join(base, "secret.txt"), notFound},
		{strings.Repeat("A", 255), notFound},        // NAME_MAX: a legal name that is not there
		{strings.Repeat("A", 255) + ".efi", access}, // beyond NAME_MAX: the file system refuses it
		{strings.Repeat("a/", 200) + "x", notFound},
		{strings.Repeat("B", 500), access},
		{strings.Repeat("../", 150) + "etc/passwd", access},
	}
	// Windows device names, with and without extensions and in both cases:
	// nothing by these names exists in the root (except the NUL symlink
	// above), so each is "file not found", never a device.
	for _, dev := range []string{"CON", "PRN", "AUX", "COM1", "COM9", "LPT1", "LPT9", "con", "aux"} {
		cases = append(cases, tc{dev, notFound}, tc{dev + ".txt", notFound}, tc{dev + ".efi", notFound},
			tc{`sub\` + dev, notFound}, tc{dev + ":", notFound})
	}
	cases = append(cases, tc{"NUL.txt", notFound}, tc{"nul.efi", notFound})
	for _, c := range cases {
		t.Run(strings.NewReplacer("/", "_", "\x00", "NUL").Replace(firstN(c.name, 40)), func(t *testing.T) {
			reply := askOnce(t, addr, rrqPacket(c.name), 3*time.Second)
			if reply == nil {
				t.Fatalf("no answer to %q", c.name)
			}
			if bytes.Contains(reply, secret) {
				t.Fatalf("%q leaked the secret file", c.name)
			}
			e, err := codec.ParseError(reply)
			if err != nil {
				t.Fatalf("%q answered with %q, not an ERROR", firstN(c.name, 60), firstN(string(reply), 40))
			}
			if e.Code != c.code {
				t.Fatalf("%q: ERROR %d %q, want ERROR %d", firstN(c.name, 60), e.Code, e.Message, c.code)
			}
		})
	}
	// Writes are refused unless --allow-write: nothing appears in the root.
	wrq := rrqPacket("planted.efi")
	wrq[1] = byte(codec.OpWRQ)
	if e, err := codec.ParseError(askOnce(t, addr, wrq, 3*time.Second)); err != nil || e.Code != access {
		t.Errorf("write request: %+v (%v), want ERROR 2", e, err)
	}
	if _, err := os.Stat(filepath.Join(root, "planted.efi")); err == nil {
		t.Error("a write request created a file")
	}
	// A NUL ends the name on the wire, so a NUL inside a name leaves a
	// request with a stray field or an empty name: malformed, dropped
	// without an answer (and never DATA of either half).
	for _, name := range []string{"ok.bin\x00../secret.txt", "\x00", "../secret.txt\x00ok.bin", "ok.bin\x00\x00\x00"} {
		if r := askOnce(t, addr, rrqPacket(name), 500*time.Millisecond); r != nil {
			if e, err := codec.ParseError(r); err != nil {
				t.Errorf("%q with a NUL answered with %q, want no answer or an ERROR", name, firstN(string(r), 40))
			} else {
				t.Logf("%q: ERROR %d %q", name, e.Code, e.Message)
			}
		}
	}
	// A name longer than a datagram can carry is not a request: no answer
	// is fine, but the server must still serve afterwards.
	if r := askOnce(t, addr, rrqPacket(strings.Repeat("L", 65000)), 500*time.Millisecond); r != nil {
		if e, err := codec.ParseError(r); err != nil {
			t.Fatalf("a 65,000-byte name answered with %q", firstN(string(r), 40))
		} else {
			t.Logf("65,000-byte name: ERROR %d %q", e.Code, e.Message)
		}
	}
	reply := askOnce(t, addr, rrqPacket("ok.bin"), 3*time.Second)
	d, err := codec.ParseData(reply)
	if err != nil || d.Block != 1 || len(d.Payload) != 512 {
		t.Fatalf("after the hostile names, ok.bin gave %q (%v), want DATA 1 of 512 bytes", firstN(string(reply), 40), err)
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
