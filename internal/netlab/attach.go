package netlab

import (
	"fmt"
	"net/netip"
)

// Attach gives a host of another lab (a router, a relay) a second
// interface, ifname, on this lab's bridge with address addr (inside this
// lab's subnet). The link goes away with either lab.
func (l *Lab) Attach(h *Host, ifname, addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil || !l.Prefix.Contains(a) {
		return fmt.Errorf("netlab: attach %s: address %q is not in %s", h.Name, addr, l.Prefix)
	}
	l.mu.Lock()
	l.nextV++
	idx := l.nextV
	l.mu.Unlock()
	hubIf := fmt.Sprintf("v%d", idx)
	peer := fmt.Sprintf("p%d", idx)
	steps := [][]string{
		{"ip", "-n", l.hub, "link", "add", hubIf, "type", "veth", "peer", "name", peer},
		{"ip", "-n", l.hub, "link", "set", peer, "netns", h.NS},
		{"ip", "-n", h.NS, "link", "set", peer, "name", ifname},
		{"ip", "-n", l.hub, "link", "set", hubIf, "master", "br0", "up"},
		{"ip", "-n", h.NS, "link", "set", ifname, "up"},
		{"ip", "-n", h.NS, "addr", "add", netip.PrefixFrom(a, l.Prefix.Bits()).String(), "dev", ifname},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// AddRoute adds a route to prefix through gateway via in the host's
// namespace. Both must lie in the lab address range.
func (h *Host) AddRoute(prefix, via string) error {
	p, err := netip.ParsePrefix(prefix)
	if err != nil || !Allowed.Contains(p.Addr()) || p.Bits() < Allowed.Bits() {
		return fmt.Errorf("netlab: route %q is outside %s", prefix, Allowed)
	}
	g, err := netip.ParseAddr(via)
	if err != nil || !Allowed.Contains(g) {
		return fmt.Errorf("netlab: gateway %q is outside %s", via, Allowed)
	}
	return run("ip", "-n", h.NS, "route", "add", p.String(), "via", g.String())
}

// EnableForwarding turns the host into an IPv4 router.
func (h *Host) EnableForwarding() error {
	return run("ip", "netns", "exec", h.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}
