package tsharkcheck

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

var (
	client = Endpoint{MAC: [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, IP: [4]byte{0, 0, 0, 0}, Port: 68}
	server = Endpoint{MAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, IP: [4]byte{255, 255, 255, 255}, Port: 67}
)

// discover returns a BOOTP/DHCP DISCOVER from a PXE client. If truncated,
// option 60 claims 32 bytes but the message ends after 5 of them.
func discover(truncated bool) []byte {
	m := make([]byte, 236)
	m[0], m[1], m[2] = 1, 1, 6 // op BOOTREQUEST, htype Ethernet, hlen 6
	copy(m[4:8], []byte{0x12, 0x34, 0x56, 0x78})
	m[10] = 0x80 // broadcast flag
	copy(m[28:34], client.MAC[:])
	m = append(m, 0x63, 0x82, 0x53, 0x63) // magic cookie
	m = append(m, 53, 1, 1)               // DHCPDISCOVER
	vci := "PXEClient:Arch:00007:UNDI:003016"
	if truncated {
		return append(m, append([]byte{60, byte(len(vci))}, vci[:5]...)...)
	}
	m = append(m, 60, byte(len(vci)))
	m = append(m, vci...)
	m = append(m, 93, 2, 0, 7)
	return append(m, 255)
}

func frame(t *testing.T, src, dst Endpoint, payload []byte) []byte {
	t.Helper()
	f, err := UDPFrame(src, dst, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheckVerdicts(t *testing.T) {
	rrq := []byte("\x00\x01boot.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00")
	badChecksum := frame(t, client, server, discover(false))
	badChecksum[14+20+8+4] ^= 0xff // the DHCP xid changes under a fixed UDP checksum
	tests := []struct {
		name      string
		frame     []byte
		opts      Options
		proto     string
		clean     bool
		malformed int
		errors    int
	}{
		{"good dhcp", frame(t, client, server, discover(false)), Options{VerifyChecksums: true}, "dhcp", true, 0, 0},
		{"truncated dhcp option", frame(t, client, server, discover(true)), Options{}, "dhcp", false, 1, 0},
		{"dhcp on 4011", frame(t, Endpoint{Port: 4011}, Endpoint{Port: 4011}, discover(false)), Options{DHCPPorts: []uint16{4011}}, "dhcp", true, 0, 0},
		{"good tftp rrq", frame(t, Endpoint{Port: 2070}, Endpoint{Port: 69}, rrq), Options{}, "tftp", true, 0, 0},
		{"tftp on 1069", frame(t, Endpoint{Port: 2070}, Endpoint{Port: 1069}, rrq), Options{TFTPPorts: []uint16{1069}}, "tftp", true, 0, 0},
		{"unterminated tftp mode", frame(t, Endpoint{Port: 2070}, Endpoint{Port: 69}, rrq[:16]), Options{}, "tftp", false, 1, 0},
		{"bad udp checksum", badChecksum, Options{VerifyChecksums: true}, "udp", false, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckFrames(t, [][]byte{tc.frame}, tc.opts)
			t.Log(res)
			if res.Clean() != tc.clean || res.Malformed != tc.malformed || res.Errors != tc.errors {
				t.Errorf("got clean=%v malformed=%d errors=%d, want clean=%v malformed=%d errors=%d",
					res.Clean(), res.Malformed, res.Errors, tc.clean, tc.malformed, tc.errors)
			}
			if res.Protocols[tc.proto] != 1 {
				t.Errorf("protocols %v: want one %s frame", res.Protocols, tc.proto)
			}
			if !tc.clean && (len(res.Problems) != 1 || res.Problems[0].Frame != 1) {
				t.Errorf("problems %v: want exactly frame 1", res.Problems)
			}
			if tc.errors == 1 && !strings.Contains(res.Problems[0].Messages, "checksum") {
				t.Errorf("expert messages %q do not mention the checksum", res.Problems[0].Messages)
			}
		})
	}
}

func TestWriteReadPCAPRoundTrip(t *testing.T) {
	frames := [][]byte{
		frame(t, client, server, discover(false)),
		frame(t, server, client, []byte("x")),
	}
	path := filepath.Join(t.TempDir(), "rt.pcap")
	if err := WritePCAP(path, frames); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPCAP(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(frames) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Errorf("frame %d differs after round trip", i)
		}
	}
	if err := WritePCAP(path, [][]byte{make([]byte, snapLen+1)}); err == nil {
		t.Error("frame longer than the snapshot length was accepted")
	}
}

func TestUDPFrameLayout(t *testing.T) {
	src := Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: [4]byte{198, 18, 0, 1}, Port: 67}
	dst := Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 2}, IP: [4]byte{198, 18, 0, 2}, Port: 68}
	f := frame(t, src, dst, []byte("hello"))
	if len(f) != 60 { // 47 bytes padded to the Ethernet minimum
		t.Fatalf("frame length %d, want 60", len(f))
	}
	checks := []struct {
		name      string
		got, want []byte
	}{
		{"dst mac", f[0:6], dst.MAC[:]},
		{"src mac", f[6:12], src.MAC[:]},
		{"ethertype", f[12:14], []byte{0x08, 0x00}},
		{"ip total length", f[16:18], []byte{0, 33}},
		{"ip protocol", f[23:24], []byte{17}},
		{"src ip", f[26:30], src.IP[:]},
		{"dst ip", f[30:34], dst.IP[:]},
		{"ports", f[34:38], []byte{0, 67, 0, 68}},
		{"udp length", f[38:40], []byte{0, 13}},
		{"payload", f[42:47], []byte("hello")},
		{"padding", f[47:], make([]byte, 60-47)},
	}
	for _, c := range checks {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = % x, want % x", c.name, c.got, c.want)
		}
	}
}

func TestParseFieldsRejectsGarbage(t *testing.T) {
	for _, out := range []string{"1\teth\n", "x\teth\t\t\t\t\t\n", "1\teth\t\tnan\t\t\t\n"} {
		if _, err := parseFields(out); err == nil {
			t.Errorf("parseFields(%q) accepted garbage", out)
		}
	}
	res, err := parseFields("1\teth:ip:udp:dhcp\t\t6291456;4194304\tbad thing\tDHCP\tinfo\n")
	if err != nil {
		t.Fatal(err)
	}
	if res.Warnings != 1 || res.Errors != 0 || res.Malformed != 0 || res.Protocols["dhcp"] != 1 {
		t.Errorf("warning line classified as %v", res)
	}
}
