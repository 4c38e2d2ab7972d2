package firmlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/peerboot/peerboot/internal/netlab"
)

// Lab is one subnet with a plain DHCP server and a host for the boot server.
type Lab struct {
	Net    *netlab.Lab
	DHCP   *netlab.Host // the plain DHCP server (.3)
	Server *netlab.Host // where the boot server under test runs (.1)
	Dir    string       // scratch directory for configs, logs and captures
	prefix netip.Prefix
}

// Available reports whether firmware labs can run here: root, ip, QEMU and
// the firmware images.
func Available() error {
	if err := netlab.Available(); err != nil {
		return err
	}
	for _, p := range []string{"qemu-system-x86_64", "tcpdump"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("firmlab: %s is missing: %w", p, err)
		}
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("firmlab: OVMF firmware: %w", err)
		}
	}
	return nil
}

// New builds the subnet (a /24 in 198.18.0.0/15): the boot-server host at
// .1 and the DHCP-server host at .3. dir holds the lab's files.
func New(subnet, dir string) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return nil, fmt.Errorf("firmlab: subnet: %w", err)
	}
	nl, err := netlab.New(subnet)
	if err != nil {
		return nil, err
	}
	l := &Lab{Net: nl, Dir: dir, prefix: p.Masked()}
	if l.Server, err = nl.AddHost("boot", l.Addr(1).String()); err != nil {
		nl.Close()
		return nil, err
	}
	if l.DHCP, err = nl.AddHost("dhcp", l.Addr(3).String()); err != nil {
		nl.Close()
		return nil, err
	}
	return l, nil
}

// Addr returns host number n of the lab subnet (n in 1..254).
func (l *Lab) Addr(n byte) netip.Addr {
	a := l.prefix.Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// Close kills everything the lab started and removes its namespaces.
func (l *Lab) Close() error { return l.Net.Close() }

// DHCPServer selects the plain DHCP server implementation.
type DHCPServer string

// Plain DHCP servers that hand out addresses only (no boot options).
const (
	Dnsmasq DHCPServer = "dnsmasq"
	ISCDHCP DHCPServer = "dhcpd"
)

// StartDHCP starts a DHCP server on the DHCP host that leases .100-.150 and
// says nothing about booting, so that only the boot server under test
// answers PXE. It waits until the server listens on port 67.
func (l *Lab) StartDHCP(ctx context.Context, kind DHCPServer) error {
	lo, hi := l.Addr(100), l.Addr(150)
	var cmd *exec.Cmd
	switch kind {
	case Dnsmasq:
		cmd = l.DHCP.Command(ctx, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
			"--port=0", "--no-ping", "--interface=eth0", "--bind-interfaces", "--user=root", "--pid-file=",
			"--dhcp-range="+lo.String()+","+hi.String()+",255.255.255.0,10m",
			"--dhcp-leasefile="+filepath.Join(l.Dir, "dnsmasq.leases"), "--log-facility=-", "--log-dhcp")
	case ISCDHCP:
		conf := filepath.Join(l.Dir, "dhcpd.conf")
		net := l.prefix.Addr().String()
		body := fmt.Sprintf("authoritative;\ndefault-lease-time 600;\nmax-lease-time 600;\nsubnet %s netmask 255.255.255.0 {\n  range %s %s;\n}\n", net, lo, hi)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return fmt.Errorf("firmlab: dhcpd config: %w", err)
		}
		leases := filepath.Join(l.Dir, "dhcpd.leases")
		if err := os.WriteFile(leases, nil, 0o644); err != nil {
			return fmt.Errorf("firmlab: dhcpd leases: %w", err)
		}
		cmd = l.DHCP.Command(ctx, "dhcpd", "-4", "-f", "-d", "-cf", conf, "-lf", leases,
			"-pf", filepath.Join(l.Dir, "dhcpd.pid"), "eth0")
	default:
		return fmt.Errorf("firmlab: unknown DHCP server %q", kind)
	}
	logf, err := os.Create(filepath.Join(l.Dir, string(kind)+".log"))
	if err != nil {
		return fmt.Errorf("firmlab: %s log: %w", kind, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := l.Net.Start(cmd); err != nil {
		logf.Close()
		return err
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	return waitUDPListen(ctx, l.DHCP, 67, 10*time.Second)
}

// waitUDPListen polls ss in the host's namespace until something listens
// on the UDP port, or the timeout passes.
func waitUDPListen(ctx context.Context, h *netlab.Host, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := fmt.Sprintf(":%d ", port)
	for time.Now().Before(deadline) {
		out, _ := h.Command(ctx, "ss", "-Hlun").Output()
		if strings.Contains(string(out), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("firmlab: nothing listens on UDP %d in %s after %s", port, h.NS, timeout)
}

// WaitUDPListen waits until a process on host h listens on a UDP port.
func (l *Lab) WaitUDPListen(ctx context.Context, h *netlab.Host, port int, timeout time.Duration) error {
	return waitUDPListen(ctx, h, port, timeout)
}

// Capture is a running tcpdump on the lab bridge.
type Capture struct {
	Path string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartCapture records every frame on the lab bridge into path (pcap).
// It returns once tcpdump is capturing.
func (l *Lab) StartCapture(ctx context.Context, path string) (*Capture, error) {
	// A 64 MiB kernel buffer (-B, KiB): QEMU guests under software
	// emulation can keep both CPUs busy long enough for tcpdump to fall
	// seconds behind a TFTP download, and the default 2 MiB then drops frames.
	cmd := l.Net.HubCommand(ctx, "tcpdump", "-i", "br0", "--immediate-mode", "-U", "-n", "-s", "0", "-B", "65536", "-w", path)
	logPath := path + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("firmlab: tcpdump log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := l.Net.Start(cmd); err != nil {
		logf.Close()
		return nil, err
	}
	c := &Capture{Path: path, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "listening on") {
			return c, nil
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("firmlab: tcpdump exited: %s", strings.TrimSpace(string(b)))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c, errors.New("firmlab: tcpdump did not start capturing within 10s")
}

// Dropped is the number of frames the kernel dropped because tcpdump fell
// behind, as tcpdump reported when it stopped (0 before Stop, or when it
// said nothing).
func (c *Capture) Dropped() int {
	b, err := os.ReadFile(c.Path + ".log")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "%d packets dropped by kernel", &n); err == nil {
			return n
		}
	}
	return 0
}

// Stop ends the capture and waits until the file is complete.
func (c *Capture) Stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	// Let tcpdump drain what the kernel already queued: wait (bounded)
	// until the file has stopped growing, then SIGTERM ends it cleanly.
	last, still := int64(-1), 0
	for i := 0; i < 50 && still < 3; i++ {
		var size int64
		if st, err := os.Stat(c.Path); err == nil {
			size = st.Size()
		}
		if size == last {
			still++
		} else {
			still, last = 0, size
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}
