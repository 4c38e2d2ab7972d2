package pxebench

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/internal/netlab"
)

// Fabrics a server and the load generator can share.
const (
	// fabricPair joins the server's namespace and the load generator's
	// by one veth pair and nothing else: what the issue specifies for
	// the benchmark, and the benchmark's default.
	fabricPair = "pair"
	// fabricBridge attaches both (and any further hosts a test adds) to
	// a netlab bridge in a hub namespace.
	fabricBridge = "bridge"
)

// benchFabric is the benchmark's fabric: PXEBENCH_FABRIC, default pair.
func benchFabric(b *testing.B) string {
	switch f := os.Getenv("PXEBENCH_FABRIC"); f {
	case "", fabricPair:
		return fabricPair
	case fabricBridge:
		return fabricBridge
	default:
		b.Fatalf("PXEBENCH_FABRIC=%q: want %q or %q", f, fabricPair, fabricBridge)
		return ""
	}
}

// benchNet is where one server and the load generator run: server (eth0
// at .1 of the subnet) and load (eth0 without an address) reach each
// other on one link.
type benchNet struct {
	fabric string
	lab    *netlab.Lab // the bridge lab (fabricBridge only), for more hosts
	server *netlab.Host
	load   *netlab.Host
	start  func(*exec.Cmd) error // starts a process that the cleanup kills
}

// newBenchNet builds a benchNet of the given fabric on subnet (a /24 in
// 198.18.0.0/15); serverName names the server's namespace. Everything is
// removed when the test ends.
func newBenchNet(t testing.TB, fabric, subnet, serverName string) *benchNet {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Fatalf("needs root and iproute2: %v", err)
	}
	a := netip.MustParsePrefix(subnet).Addr().As4()
	a[3] = 1
	serverIP := netip.AddrFrom4(a).String()
	n := &benchNet{fabric: fabric}
	switch fabric {
	case fabricPair:
		p, err := netlab.NewPair(subnet, serverName, serverIP, "load", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		n.server, n.load, n.start = p.A, p.B, p.Start
	case fabricBridge:
		l, err := netlab.New(subnet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		n.lab, n.start = l, l.Start
		if n.server, err = l.AddHost(serverName, serverIP); err != nil {
			t.Fatal(err)
		}
		if n.load, err = l.AddHost("load", ""); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown fabric %q", fabric)
	}
	return n
}

// waitListening waits (at most 10 s) until every one of ports (as "ss
// -Hlun" prints them, e.g. ":4011 ") is open in the server's namespace;
// logPath is the server's log, shown if it never is.
func (n *benchNet) waitListening(t testing.TB, logPath string, ports ...string) {
	t.Helper()
	for i := 0; ; i++ {
		out, _ := n.server.Command(context.Background(), "ss", "-Hlun").Output()
		open := 0
		for _, p := range ports {
			if strings.Contains(string(out), p) {
				open++
			}
		}
		if open == len(ports) {
			return
		}
		if i == 100 {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("server not listening on %q after 10s:\n%s", ports, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describe says which fabric the figures were measured on.
// On a bridge it first sets the bridge's netfilter hooks (bridgeHooks).
func (n *benchNet) describe(t testing.TB) string {
	if n.fabric == fabricPair {
		return "fabric: one veth pair between the server's namespace and the load generator's"
	}
	return "fabric: netlab bridge (" + bridgeHooks(t, n.lab) + ")"
}

// bridgeHooks decides whether frames crossing the lab's bridge pass
// through the host's iptables hooks (br_netfilter, when the kernel has
// it) and says which. Whichever process sends a frame pays for the bridge
// in its own system time (the bridge runs in the sender's softirq), so the
// hooks add the same fixed cost per frame to every server's CPU figure.
// By default they are turned off in the lab's hub namespace;
// PXEBENCH_BRIDGE_NF=1 keeps them.
func bridgeHooks(t testing.TB, lab *netlab.Lab) string {
	if os.Getenv("PXEBENCH_BRIDGE_NF") == "1" {
		return "netfilter hooks as the host has them"
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return "no netfilter hooks in this kernel"
	}
	out, err := lab.HubCommand(context.Background(), "sysctl", "-qw",
		"net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0",
		"net.bridge.bridge-nf-call-arptables=0").CombinedOutput()
	if err != nil {
		t.Fatalf("turning off the bridge's netfilter hooks: %v: %s", err, out)
	}
	return "netfilter hooks off in the hub namespace"
}
