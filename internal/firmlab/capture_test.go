package firmlab

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestReadFirmwareCaptures(t *testing.T) {
	tests := []struct {
		pcap      string
		mac       string
		file      string
		size      int64
		probeErr  bool // a tsize probe aborted with ERROR 8 precedes the download
		blksize   string
		vendorPfx string
	}{
		{"testdata/ovmf-uefi-x64-proxydhcp.pcap", "52:54:00:12:00:11", "lab-efi64.efi", 65536, true, "1468", "PXEClient:Arch:00007"},
		{"testdata/seabios-ipxe-bios-proxydhcp.pcap", "52:54:00:12:00:10", "lab-bios.0", 65536, false, "1432", "PXEClient:Arch:00000"},
	}
	for _, tt := range tests {
		rep, err := Read(tt.pcap)
		if err != nil {
			t.Fatal(err)
		}
		ip, ok := rep.ClientIP(tt.mac)
		if !ok || ip != netip.MustParseAddr("198.18.0.100") {
			t.Fatalf("%s: client IP = %v %v", tt.pcap, ip, ok)
		}
		var done *Transfer
		probes := 0
		for _, tr := range rep.TransfersTo(ip) {
			if tr.File != tt.file {
				t.Errorf("%s: unexpected file %q", tt.pcap, tr.File)
			}
			if tr.ClientError != "" {
				probes++
				if tr.ClientError[0] != '8' {
					t.Errorf("%s: client error %q, want code 8", tt.pcap, tr.ClientError)
				}
			}
			if tr.Complete {
				done = tr
			}
		}
		if done == nil || done.Bytes != tt.size {
			t.Fatalf("%s: no complete transfer of %d bytes: %+v", tt.pcap, tt.size, rep.Transfers)
		}
		if done.Requested["blksize"] != tt.blksize {
			t.Errorf("%s: blksize %q, want %s", tt.pcap, done.Requested["blksize"], tt.blksize)
		}
		if (probes > 0) != tt.probeErr {
			t.Errorf("%s: %d aborted tsize probes", tt.pcap, probes)
		}
		msgs := rep.Messages(tt.mac)
		if len(msgs) == 0 || len(msgs[0].VendorClass) < len(tt.vendorPfx) || msgs[0].VendorClass[:len(tt.vendorPfx)] != tt.vendorPfx {
			t.Errorf("%s: first message %+v", tt.pcap, msgs)
		}
	}
}

func TestReadMissingFile(t *testing.T) {
	if _, err := Read("testdata/does-not-exist.pcap"); err == nil {
		t.Fatal("no error for a missing capture")
	}
}

// TestCaptureDropped reads the kernel drop count from tcpdump's closing
// statistics.
func TestCaptureDropped(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		log  string
		want int
	}{
		{"tcpdump: listening on br0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n" +
			"10211 packets captured\n10377 packets received by filter\n166 packets dropped by kernel\n", 166},
		{"tcpdump: listening on br0\n5 packets captured\n5 packets received by filter\n0 packets dropped by kernel\n", 0},
		{"tcpdump: listening on br0\n", 0},
	} {
		c := &Capture{Path: filepath.Join(dir, "c.pcap")}
		if err := os.WriteFile(c.Path+".log", []byte(tc.log), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := c.Dropped(); got != tc.want {
			t.Errorf("Dropped() = %d for %q, want %d", got, tc.log, tc.want)
		}
	}
	if got := (&Capture{Path: filepath.Join(dir, "missing.pcap")}).Dropped(); got != 0 {
		t.Errorf("Dropped() without a log = %d, want 0", got)
	}
}
