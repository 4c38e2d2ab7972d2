package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// Pair is two namespaces joined directly by one veth pair: no bridge, no
// hub namespace, nothing else on the link. A frame one side sends reaches
// the other side's eth0 and nothing more, so a benchmark over a pair
// measures the endpoints, not a fabric.
type Pair struct {
	A, B *Host // each with interface eth0, the two ends of the veth pair
	// lab keeps the processes and namespaces for Start and Close. It has
	// no bridge: its hub is A's namespace and its only host is B, so
	// Lab.Close kills and deletes exactly the two namespaces.
	lab *Lab
}

// NewPair creates namespaces nameA and nameB on subnet (inside
// 198.18.0.0/15) joined by one veth pair, eth0 on each side, with
// addresses addrA and addrB (in subnet; "" leaves that side without an
// address, like a PXE client before DHCP). Close removes both.
func NewPair(subnet, nameA, addrA, nameB, addrB string) (*Pair, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	prefix, err := labPrefix(subnet)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("pb%d-%d", os.Getpid(), labSeq.Add(1))
	l := &Lab{Name: name, Prefix: prefix}
	p := &Pair{lab: l}
	if p.A, err = l.describeHost(nameA, addrA); err != nil {
		return nil, err
	}
	if p.B, err = l.describeHost(nameB, addrB); err != nil {
		return nil, err
	}
	if p.A.NS == p.B.NS {
		return nil, fmt.Errorf("netlab: pair needs two names, got %q twice", nameA)
	}
	l.hub = p.A.NS
	if err := l.initNS(p.A.NS); err != nil {
		l.Close()
		return nil, err
	}
	l.hosts = []*Host{p.B}
	if err := l.initNS(p.B.NS); err != nil {
		l.Close()
		return nil, err
	}
	// Both ends are created as eth0, each directly in its own namespace.
	steps := [][]string{
		{"ip", "-n", p.A.NS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.B.NS},
	}
	for _, h := range []*Host{p.A, p.B} {
		steps = append(steps, []string{"ip", "-n", h.NS, "link", "set", "eth0", "up"})
		if h.Addr.IsValid() {
			steps = append(steps, []string{"ip", "-n", h.NS, "addr", "add", netip.PrefixFrom(h.Addr, prefix.Bits()).String(), "dev", "eth0"})
		}
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			l.Close()
			return nil, err
		}
	}
	for _, h := range []*Host{p.A, p.B} {
		if h.MAC, err = linkMAC(h.NS, "eth0"); err != nil {
			l.Close()
			return nil, err
		}
	}
	return p, nil
}

// Start starts cmd (from A.Command or B.Command) and remembers its PID so
// Close kills it, as Lab.Start does.
func (p *Pair) Start(cmd *exec.Cmd) error { return p.lab.Start(cmd) }

// Close kills every process started through Start and every process left
// in the two namespaces, and deletes both (which removes the veth pair).
// Safe to call twice.
func (p *Pair) Close() error { return p.lab.Close() }

// labPrefix parses a lab subnet and checks it lies in Allowed.
func labPrefix(subnet string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("netlab: subnet %q: %w", subnet, err)
	}
	p = p.Masked()
	if !Allowed.Contains(p.Addr()) || p.Bits() < Allowed.Bits() {
		return netip.Prefix{}, fmt.Errorf("netlab: subnet %s is outside %s", p, Allowed)
	}
	return p, nil
}

// describeHost describes host name of the lab with address addr ("" =
// none), which must lie in the lab's subnet; it creates nothing (AddHost
// and NewPair build on it).
func (l *Lab) describeHost(name, addr string) (*Host, error) {
	h := &Host{lab: l, Name: name, NS: l.Name + "-" + name, If: "eth0"}
	if addr == "" {
		return h, nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("netlab: host %s address %q: %w", name, addr, err)
	}
	if !l.Prefix.Contains(a) {
		return nil, fmt.Errorf("netlab: host %s address %s is outside %s", name, a, l.Prefix)
	}
	h.Addr = a
	return h, nil
}

// linkMAC reads the MAC address of interface ifname in namespace ns.
func linkMAC(ns, ifname string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", ifname).Output()
	if err != nil {
		return "", fmt.Errorf("netlab: reading MAC of %s in %s: %w", ifname, ns, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("netlab: no MAC for %s in %s: %q", ifname, ns, out)
	}
	return f[2], nil
}
