package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Allowed is the only address range a lab may use (RFC 2544 benchmarking).
var Allowed = netip.MustParsePrefix("198.18.0.0/15")

var labSeq atomic.Int32

// Lab is one virtual subnet: a hub namespace holding a bridge, and hosts
// attached to it by veth pairs.
type Lab struct {
	Name   string       // prefix of every namespace of this lab
	Prefix netip.Prefix // the subnet, e.g. 198.18.7.0/24
	hub    string

	mu    sync.Mutex
	hosts []*Host
	procs []*exec.Cmd
	nextV int
	seq   int
}

// Host is one namespace attached to the lab's bridge.
type Host struct {
	lab  *Lab
	Name string     // short name given by the caller
	NS   string     // namespace name
	If   string     // interface name inside the namespace (eth0)
	Addr netip.Addr // address on the lab subnet
	MAC  string     // MAC address of If
}

// Available reports whether labs can be built here (root and the ip command).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netlab: the ip command (iproute2) is missing")
	}
	return nil
}

// New creates a lab on subnet (a /24 inside 198.18.0.0/15). The bridge gets
// the .254 address inside the hub namespace.
func New(subnet string) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	p, err := labPrefix(subnet)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("pb%d-%d", os.Getpid(), labSeq.Add(1))
	l := &Lab{Name: name, Prefix: p, hub: name + "-hub"}
	if err := l.initNS(l.hub); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", l.hub, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		l.Close()
		return nil, err
	}
	if err := run("ip", "-n", l.hub, "link", "set", "br0", "up"); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) initNS(ns string) error {
	if err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// IPv6 off: nothing in a lab should chatter router solicitations.
	_ = run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return nil
}

// AddHost creates namespace name with interface eth0 on the bridge, address
// addr (which must lie in the lab's subnet). An empty addr leaves the
// interface without an address (a PXE client before DHCP).
func (l *Lab) AddHost(name, addr string) (*Host, error) {
	l.mu.Lock()
	l.nextV++
	idx := l.nextV
	l.mu.Unlock()
	h, err := l.describeHost(name, addr)
	if err != nil {
		return nil, err
	}
	if err := l.initNS(h.NS); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	hubIf := fmt.Sprintf("v%d", idx)
	peer := fmt.Sprintf("p%d", idx)
	steps := [][]string{
		{"ip", "-n", l.hub, "link", "add", hubIf, "type", "veth", "peer", "name", peer},
		{"ip", "-n", l.hub, "link", "set", peer, "netns", h.NS},
		{"ip", "-n", h.NS, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", l.hub, "link", "set", hubIf, "master", "br0", "up"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
	}
	if h.Addr.IsValid() {
		steps = append(steps, []string{"ip", "-n", h.NS, "addr", "add", netip.PrefixFrom(h.Addr, l.Prefix.Bits()).String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	if h.MAC, err = linkMAC(h.NS, "eth0"); err != nil {
		return nil, err
	}
	return h, nil
}

// AddTap creates a tap device on the lab's bridge (inside the hub namespace)
// for a QEMU guest, which must then run inside Hub's namespace.
func (l *Lab) AddTap() (string, error) {
	l.mu.Lock()
	l.nextV++
	name := fmt.Sprintf("tap%d", l.nextV)
	l.mu.Unlock()
	if err := run("ip", "-n", l.hub, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return "", err
	}
	if err := run("ip", "-n", l.hub, "link", "set", name, "master", "br0", "up"); err != nil {
		return "", err
	}
	return name, nil
}

// HubNS is the namespace that holds the bridge (and taps).
func (l *Lab) HubNS() string { return l.hub }

// Command returns a command that runs inside the host's namespace. Start it
// with Lab.Start so Close kills it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCommand(ctx, h.NS, name, args...)
}

// HubCommand returns a command that runs in the hub namespace.
func (l *Lab) HubCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCommand(ctx, l.hub, name, args...)
}

func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	// No Pdeathsig: Linux sends it when the forking thread exits, and
	// Host.Do ends the threads it locks, so it would kill processes at
	// random. Close kills every process by PID (and the lab's namespaces).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Start starts cmd and remembers its PID so Close kills it (and its
// process group) even if the test fails first.
func (l *Lab) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("netlab: start %s: %w", cmd.Path, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	return nil
}

// Do runs fn on an OS thread switched into the host's namespace. Sockets
// opened by fn stay in that namespace after Do returns, so a test can serve
// from several hosts in one process. fn must not start goroutines that
// expect to be in the namespace.
func (h *Host) Do(fn func() error) error { return doInNS(h.NS, fn) }

func doInNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with this goroutine, so
		// the namespace switch cannot leak to other goroutines.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("netlab: open namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netlab: setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Close kills every process started through Start (by PID, then its group),
// then every process still inside the lab's namespaces, and deletes the
// namespaces (which removes their links). Safe to call twice.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	hosts := l.hosts
	l.hosts = nil
	l.mu.Unlock()
	for _, c := range procs {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
		}
	}
	var errs []error
	nss := []string{}
	for _, h := range hosts {
		nss = append(nss, h.NS)
	}
	nss = append(nss, l.hub)
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := exec.Command("ip", "netns", "del", ns).Run(); err != nil {
			if _, statErr := os.Stat("/run/netns/" + ns); statErr == nil {
				errs = append(errs, fmt.Errorf("netlab: delete %s: %w", ns, err))
			}
		}
	}
	return errors.Join(errs...)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
