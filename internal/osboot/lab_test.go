package osboot_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerboot/peerboot/internal/firmlab"
	"github.com/peerboot/peerboot/internal/osboot"
)

// Limits for one guest under software emulation, from power-on to the
// marker on its serial console.
const (
	ovmfLimit    = 5 * time.Minute
	seabiosLimit = 4 * time.Minute
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// peerbootBinary compiles the real binary once per test process, or uses
// the one PEERBOOT_BIN names.
func peerbootBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binPath = os.Getenv("PEERBOOT_BIN"); binPath != "" {
			return
		}
		dir, err := os.MkdirTemp("", "osboot-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "peerboot")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/peerboot/peerboot/cmd/peerboot").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// osLab is a firmware lab whose TFTP root holds the Linux boot artefacts.
type osLab struct {
	*firmlab.Lab
	art     *osboot.Artefacts
	dir     string
	bin     string
	capture *firmlab.Capture
	pcap    string
}

// newOSLab builds the artefacts, the subnet with its plain DHCP server, and
// starts capturing. Everything is removed by t.Cleanup, even on failure.
func newOSLab(t *testing.T, ctx context.Context, subnet string) *osLab {
	t.Helper()
	l := newOSLabWithoutDHCP(t, ctx, subnet)
	if err := l.StartDHCP(ctx, firmlab.Dnsmasq); err != nil {
		t.Fatal(err)
	}
	return l
}

// newOSLabWithoutDHCP is newOSLab for a subnet whose DHCP server is
// elsewhere (behind a relay).
func newOSLabWithoutDHCP(t *testing.T, ctx context.Context, subnet string) *osLab {
	t.Helper()
	if err := firmlab.Available(); err != nil {
		t.Fatalf("firmware lab unavailable (run as root after scripts/setup.sh): %v", err)
	}
	src := osboot.DefaultSources()
	if err := src.Check(); err != nil {
		t.Fatalf("boot artefacts unavailable (scripts/setup.sh runs scripts/fetch-test-kernel.sh): %v", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	art, err := osboot.Build(filepath.Join(dir, "tftp"), src)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := firmlab.New(subnet, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	l := &osLab{Lab: lab, art: art, dir: dir, bin: peerbootBinary(t), pcap: filepath.Join(dir, "boot.pcap")}
	if l.capture, err = lab.StartCapture(ctx, l.pcap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.capture.Stop)
	return l
}

// logFile creates a log in the lab directory; its tail is printed when
// the test fails.
func (l *osLab) logFile(t *testing.T, name string) *os.File {
	t.Helper()
	path := filepath.Join(l.dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(path)
			t.Logf("--- %s (tail):\n%s", name, tail(b, 40))
		}
	})
	return f
}

// guest is one machine to boot and what came of it.
type guest struct {
	g     *firmlab.Guest
	limit time.Duration
	nbp   string // the boot program the firmware should fetch ("" = none: iPXE ROM)
	line  string // the marker line read from the serial console
	took  time.Duration
	err   error
}

func newGuest(fw firmlab.Firmware, name, mac, uuid string) *guest {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	g := &guest{g: &firmlab.Guest{Firmware: fw, MAC: hw, UUID: uuid, Name: name}, limit: seabiosLimit}
	if fw == firmlab.OVMF {
		g.limit, g.nbp = ovmfLimit, "ipxe.efi"
	}
	return g
}

// firmwareGuests are a scenario's two guests, OVMF and SeaBIOS+iPXE, with
// MACs and UUIDs numbered after the scenario's subnet (198.18.n.0/24).
func firmwareGuests(n int) []*guest {
	return []*guest{
		newGuest(firmlab.OVMF, "ovmf", fmt.Sprintf("52:54:00:%d:00:11", n), fmt.Sprintf("c6a01800-0000-4000-8000-00000000%d11", n)),
		newGuest(firmlab.SeaBIOSiPXE, "seabios", fmt.Sprintf("52:54:00:%d:00:10", n), fmt.Sprintf("c6a01800-0000-4000-8000-00000000%d10", n)),
	}
}

// bootAndRead boots the guests (bootAll), stops the capture, saves it as
// name (saveCapture) and reads it.
func (l *osLab) bootAndRead(t *testing.T, ctx context.Context, name string, guests ...*guest) *firmlab.Report {
	t.Helper()
	l.bootAll(t, ctx, guests...)
	l.capture.Stop()
	if n := l.capture.Dropped(); n > 0 {
		t.Logf("the capture lost %d frames (tcpdump fell behind): checks of it may fail for that reason", n)
	}
	l.saveCapture(t, name)
	rep, err := firmlab.Read(l.pcap)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// bootAll powers the guests on together and waits for each one's marker
// (or its limit); QEMU is killed when it is done.
func (l *osLab) bootAll(t *testing.T, ctx context.Context, guests ...*guest) {
	t.Helper()
	var wg sync.WaitGroup
	for _, gu := range guests {
		gu.line, gu.err = "", nil
		if err := l.StartSerialGuest(ctx, gu.g); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer gu.g.Stop()
			gu.line, gu.err = gu.g.WaitSerial(ctx, osboot.Marker(gu.g.MAC.String()), gu.g.Started().Add(gu.limit))
			gu.took = time.Since(gu.g.Started())
		}()
	}
	wg.Wait()
}

// requireBooted fails the test unless the guest printed its marker.
func requireBooted(t *testing.T, gu *guest) {
	t.Helper()
	if gu.err != nil {
		b, _ := os.ReadFile(gu.g.SerialLog())
		t.Fatalf("%s did not boot Linux: %v\nserial console (tail):\n%s", gu.g.Name, gu.err, tail(b, 25))
	}
	t.Logf("%s booted Linux in %.1fs: %s", gu.g.Name, gu.took.Seconds(), gu.line)
}

// clientIPs are the addresses the guest used (firmware and iPXE may lease
// different ones).
func clientIPs(rep *firmlab.Report, mac string) map[netip.Addr]bool {
	ips := map[netip.Addr]bool{}
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	for _, m := range rep.Messages(mac) {
		if m.Op == 1 && m.CIAddr.IsValid() && !m.CIAddr.IsUnspecified() {
			ips[m.CIAddr] = true
		}
		if m.Op == 2 && m.Type == 5 && m.Dst.Addr().IsValid() && m.Dst.Addr() != bcast {
			ips[m.Dst.Addr()] = true
		}
	}
	return ips
}

// interop is what the capture shows about one guest's boot: one row of
// the firmware interop matrix.
type interop struct {
	firmware  string
	discover  []string // the options of each distinct DISCOVER (firmware, then iPXE)
	transfers []string
	requested map[string]bool     // files requested from server
	ips       map[netip.Addr]bool // the guest's addresses
}

// readInterop reads from the capture which files the guest requested from
// server, and describes the exchange. (tcpdump may drop some of the
// thousands of DATA frames of a kernel download: that the whole kernel and
// initramfs arrived is shown by the marker, which only they can print.)
func readInterop(rep *firmlab.Report, gu *guest, server netip.Addr) interop {
	mac := gu.g.MAC.String()
	in := interop{firmware: string(gu.g.Firmware), requested: map[string]bool{}, ips: clientIPs(rep, mac)}
	seen := map[string]bool{}
	for _, m := range rep.Messages(mac) {
		if m.Op == 1 && m.Type == 1 {
			d := fmt.Sprintf("60=%q 77=%q 93=%v options=%v", m.VendorClass, m.UserClass, m.Arch, m.Options)
			if !seen[d] {
				seen[d] = true
				in.discover = append(in.discover, d)
			}
		}
	}
	for _, tr := range rep.Transfers {
		if !in.ips[tr.Client.Addr()] {
			continue
		}
		in.transfers = append(in.transfers, fmt.Sprintf("%s from %v: requested %v accepted %v client-error %q bytes %d complete %v in %.2fs",
			tr.File, tr.Server, sortedOpts(tr.Requested), sortedOpts(tr.Accepted), tr.ClientError, tr.Bytes, tr.Complete, tr.End.Sub(tr.Start).Seconds()))
		if tr.Server == server {
			in.requested[tr.File] = true
		}
	}
	return in
}

func sortedOpts(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return "[" + strings.Join(kv, " ") + "]"
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// saveCapture writes the capture, trimmed of bulk TFTP data, into the
// directory PEERBOOT_SAVE_CAPTURES names when it is set: how the fuzz
// corpora are refreshed from real boots.
func (l *osLab) saveCapture(t *testing.T, name string) {
	dst := os.Getenv("PEERBOOT_SAVE_CAPTURES")
	if dst == "" {
		return
	}
	read, kept, err := trimCapture(l.pcap, filepath.Join(dst, name))
	if err != nil {
		t.Errorf("saving capture: %v", err)
	}
	t.Logf("capture %s: kept %d of %d frames", name, kept, read)
}
