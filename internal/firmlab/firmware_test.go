package firmlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerboot/peerboot/internal/firmlab"
)

// buildPeerboot compiles the real binary once per test run.
func buildPeerboot(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "peerboot")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/peerboot/peerboot/cmd/peerboot")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeRandom(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLog polls a log file until a line contains every one of want, or
// the guest exits, or the deadline passes.
func waitLog(path string, deadline time.Time, quit <-chan struct{}, want ...string) bool {
	has := func() bool {
		b, _ := os.ReadFile(path)
		for _, line := range bytes.Split(b, []byte("\n")) {
			all := true
			for _, w := range want {
				all = all && bytes.Contains(line, []byte(w))
			}
			if all {
				return true
			}
		}
		return false
	}
	for time.Now().Before(deadline) {
		if has() {
			return true
		}
		select {
		case <-quit:
			return has()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return false
}

type guestCase struct {
	g        *firmlab.Guest
	file     string
	size     int
	limit    time.Duration
	from4011 uint16 // source port of the firmware's boot-server request
}

// TestFirmwareBootsFromPeerboot PXE-boots OVMF (UEFI x64) and SeaBIOS with
// the iPXE ROM, in parallel, against a plain DHCP server plus the peerboot
// standalone agent as ProxyDHCP and TFTP server, and checks from the
// capture that each guest downloaded its whole boot file from peerboot.
func TestFirmwareBootsFromPeerboot(t *testing.T) {
	if err := firmlab.Available(); err != nil {
		t.Fatalf("firmware lab unavailable (run as root with qemu-system-x86, ovmf, ipxe-qemu, tcpdump): %v", err)
	}
	bin := buildPeerboot(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lab, err := firmlab.New("198.18.40.0/24", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	if err := lab.StartDHCP(ctx, firmlab.Dnsmasq); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "tftp")
	const biosFile, efiFile = "bios/lab-bios.0", "efi/lab-x64.efi"
	writeRandom(t, filepath.Join(root, biosFile), 64<<10)
	writeRandom(t, filepath.Join(root, efiFile), 96<<10+100)
	pcap := filepath.Join(dir, "boot.pcap")
	capture, err := lab.StartCapture(ctx, pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Stop()

	agentLog := filepath.Join(dir, "agent.log")
	logf, err := os.Create(agentLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	stats := filepath.Join(dir, "agent-stats.json")
	agent := lab.Server.Command(ctx, bin, "agent", "--standalone", "--interface", "eth0",
		"--tftp-root", root, "--bootfile", "bios="+biosFile, "--bootfile", "efi64="+efiFile,
		"--stats-file", stats, "--log-level", "debug")
	agent.Stdout, agent.Stderr = logf, logf
	if err := lab.Net.Start(agent); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{69, 4011} {
		if err := lab.WaitUDPListen(ctx, lab.Server, port, 15*time.Second); err != nil {
			b, _ := os.ReadFile(agentLog)
			t.Fatalf("%v\nagent log:\n%s", err, b)
		}
	}

	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	cases := []*guestCase{
		{g: &firmlab.Guest{Firmware: firmlab.OVMF, MAC: mac("52:54:00:40:00:11"), UUID: "c6a01800-0000-4000-8000-000000004011"},
			file: efiFile, size: 96<<10 + 100, limit: 180 * time.Second, from4011: 4011},
		{g: &firmlab.Guest{Firmware: firmlab.SeaBIOSiPXE, MAC: mac("52:54:00:40:00:10"), UUID: "c6a01800-0000-4000-8000-000000004010"},
			file: biosFile, size: 64 << 10, limit: 90 * time.Second, from4011: 68},
	}
	var wg sync.WaitGroup
	fetched := make([]bool, len(cases))
	took := make([]time.Duration, len(cases))
	for i, c := range cases {
		if err := lab.StartGuest(ctx, c.g); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.g.Stop()
			fetched[i] = waitLog(agentLog, c.g.Started().Add(c.limit), c.g.Done(), "tftp transfer done", "file="+c.file)
			took[i] = time.Since(c.g.Started())
		}()
	}
	wg.Wait()
	// The agent logs a transfer as done when the last ACK arrives; tcpdump
	// may still hold the last blocks (a loaded machine can starve it for
	// longer than Stop waits for the file to stop growing), so wait,
	// bounded, until the capture shows every fetched file whole.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rep, _ := firmlab.Read(pcap); rep != nil && capturedWhole(rep, cases, fetched) {
			break
		}
	}
	capture.Stop()
	if n := capture.Dropped(); n > 0 {
		t.Logf("the capture lost %d frames (tcpdump fell behind): checks of it may fail for that reason", n)
	}
	for _, c := range cases {
		b, _ := os.ReadFile(filepath.Join(c.g.Dir, "qemu.log"))
		t.Logf("%s qemu output: %s", c.g.Firmware, tail(b, 10))
	}
	if b, err := os.ReadFile(agentLog); err == nil {
		t.Logf("agent log:\n%s", tail(b, 30))
	}
	if dst := os.Getenv("PEERBOOT_SAVE_CAPTURES"); dst != "" {
		if b, err := os.ReadFile(pcap); err == nil {
			_ = os.WriteFile(filepath.Join(dst, "peerboot-firmware-boots.pcap"), b, 0o644)
		}
		if b, err := os.ReadFile(pcap + ".log"); err == nil {
			t.Logf("tcpdump: %s", b)
		}
	}
	rep, err := firmlab.Read(pcap)
	if err != nil {
		t.Fatal(err)
	}
	agentIP := lab.Addr(1)
	for i, c := range cases {
		t.Run(string(c.g.Firmware), func(t *testing.T) {
			if !fetched[i] {
				b, _ := os.ReadFile(agentLog)
				t.Fatalf("%s did not fetch %s within %s\nagent log:\n%s", c.g.Firmware, c.file, c.limit, tail(b, 40))
			}
			checkBoot(t, rep, c, agentIP, took[i])
		})
	}
}

// capturedWhole reports whether the capture holds a complete transfer of
// each fetched guest's file (polling a capture that is still being written).
func capturedWhole(rep *firmlab.Report, cases []*guestCase, fetched []bool) bool {
	for i, c := range cases {
		if !fetched[i] {
			continue
		}
		found := false
		for _, tr := range rep.Transfers {
			found = found || (tr.File == c.file && tr.Complete && tr.Bytes == int64(c.size))
		}
		if !found {
			return false
		}
	}
	return true
}

// checkBoot asserts, from the capture, how the guest booted from peerboot.
func checkBoot(t *testing.T, rep *firmlab.Report, c *guestCase, agentIP netip.Addr, took time.Duration) {
	macs := c.g.MAC.String()
	ip, ok := rep.ClientIP(macs)
	if !ok {
		t.Fatalf("no address for %s in the capture", macs)
	}
	var offer, req, ack bool
	var sent []string
	for _, m := range rep.Messages(macs) {
		switch {
		case m.Op == 1 && m.Type == 1 && len(sent) == 0:
			sent = append(sent, fmt.Sprintf("60=%q 93=%v 77=%q options=%v", m.VendorClass, m.Arch, m.UserClass, m.Options))
		case m.Op == 2 && m.Type == 2 && m.Src.Addr() == agentIP:
			offer = offer || (m.Src.Port() == 67 && m.Dst.Port() == 68 && m.VendorClass == "PXEClient")
		case m.Op == 1 && m.Type == 3 && m.Dst.Port() == 4011 && m.Dst.Addr() == agentIP:
			req = true
			if m.Src.Port() != c.from4011 {
				t.Errorf("boot-server request from port %d, expected %d", m.Src.Port(), c.from4011)
			}
		case m.Op == 2 && m.Type == 5 && m.Src == netip.AddrPortFrom(agentIP, 4011):
			ack = true
			if m.Dst != netip.AddrPortFrom(ip, c.from4011) || m.File != c.file {
				t.Errorf("ACK to %v file %q, want %v:%d file %q", m.Dst, m.File, ip, c.from4011, c.file)
			}
		}
	}
	if !offer || !req || !ack {
		t.Errorf("exchange incomplete: proxy offer %v, 4011 request %v, ACK %v", offer, req, ack)
	}
	var whole *firmlab.Transfer
	for _, tr := range rep.TransfersTo(ip) {
		t.Logf("TFTP %s from %v: requested %v accepted %v client-error %q blocks %d bytes %d complete %v",
			tr.File, tr.Server, tr.Requested, tr.Accepted, tr.ClientError, tr.Blocks, tr.Bytes, tr.Complete)
		if tr.Server == agentIP && tr.File == c.file && tr.Complete && tr.Bytes == int64(c.size) {
			whole = tr
		}
	}
	if whole == nil {
		t.Fatalf("no complete %d-byte TFTP transfer of %s from %v to %v", c.size, c.file, agentIP, ip)
	}
	t.Logf("INTEROP %s: DISCOVER %s; blksize %s windowsize %q; boot file fetched %.1fs after power-on",
		c.g.Firmware, strings.Join(sent, " "), whole.Requested["blksize"], whole.Requested["windowsize"], took.Seconds())
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
