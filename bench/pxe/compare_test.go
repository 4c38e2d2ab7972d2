package pxebench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/internal/netlab"
)

// dnsmasqLab is dnsmasq in proxy mode with one PXE service per client
// system type the load generator plays, answering on 67 and 4011.
type dnsmasqLab struct {
	net      *benchNet
	cmd      *exec.Cmd
	serverIP netip.Addr
}

// startDnsmasq starts dnsmasq in the server namespace of a new benchNet
// on subnet (fabric fabricBridge or fabricPair).
func startDnsmasq(t testing.TB, fabric, subnet string) *dnsmasqLab {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Fatalf("dnsmasq is required for the comparison (Debian package dnsmasq-base): %v", err)
	}
	p := netip.MustParsePrefix(subnet)
	n := newBenchNet(t, fabric, subnet, "dnsmasq")
	dl := &dnsmasqLab{net: n, serverIP: n.server.Addr}
	dir := t.TempDir()
	args := []string{"--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=", "--user=root", "--quiet-dhcp",
		"--log-facility=" + filepath.Join(dir, "dnsmasq.log"),
		"--dhcp-range=" + p.Masked().Addr().String() + ",proxy",
		"--pxe-prompt=boot,0",
		"--pxe-service=x86PC,boot,bios",
		"--pxe-service=BC_EFI,boot,x64.efi",
		"--pxe-service=x86-64_EFI,boot,x64.efi",
		"--pxe-service=ARM64_EFI,boot,aa64.efi",
	}
	dl.cmd = n.server.Command(context.Background(), bin, args...)
	logPath := filepath.Join(dir, "stderr.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	dl.cmd.Stdout, dl.cmd.Stderr = logf, logf
	if err := n.start(dl.cmd); err != nil {
		t.Fatal(err)
	}
	n.waitListening(t, logPath, ":4011 ", ":67 ")
	return dl
}

// cpuTicks is the user and system CPU time of a process in clock ticks
// (/proc/PID/stat fields 14 and 15, utime and stime).
func cpuTicks(pid int) (user, sys uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces: fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return u, st, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// measured is one server under load.
type measured struct {
	Result
	CPUSeconds float64 // user + system
	SysSeconds float64 // system (kernel) part
}

func (m measured) cpuPer1k() float64 {
	if m.Exchanges == 0 {
		return 0
	}
	return m.CPUSeconds / float64(m.Exchanges) * 1000
}

// runLoad runs the load generator from n's load namespace against the
// server process pid and measures the server's CPU time meanwhile.
func runLoad(t testing.TB, n *benchNet, subnet string, pid, clients int, d time.Duration) measured {
	t.Helper()
	u0, s0, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	err = n.load.Do(func() error {
		var err error
		r, err = Run(context.Background(), Config{Interface: "eth0", Clients: clients, Duration: d,
			ClientNet: netip.MustParsePrefix(subnet)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	u1, s1, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	return measured{Result: r, CPUSeconds: float64(u1+s1-u0-s0) / clockTicks, SysSeconds: float64(s1-s0) / clockTicks}
}

// TestLoadgenCountsDnsmasqExchanges checks, over each fabric, that the
// load generator completes the whole exchange against dnsmasq for every
// client architecture it plays (dnsmasq answers 4011 through a UDP
// socket, so this also needs the load generator's ARP answers), so the
// side-by-side figures compare the same work; and that the fabric's
// namespaces are gone afterwards.
func TestLoadgenCountsDnsmasqExchanges(t *testing.T) {
	for i, fabric := range []string{fabricPair, fabricBridge} {
		t.Run("fabric="+fabric, func(t *testing.T) {
			var dl *dnsmasqLab
			// Registered first, so it runs after the lab's own cleanup.
			t.Cleanup(func() { checkNamespacesGone(t, dl) })
			subnet := fmt.Sprintf("198.18.%d.0/24", 46+i*2)
			dl = startDnsmasq(t, fabric, subnet)
			m := runLoad(t, dl.net, subnet, dl.cmd.Process.Pid, len(archs), time.Second)
			t.Logf("dnsmasq over %s: %s; cpu %.2fs", fabric, m.Result, m.CPUSeconds)
			if m.ClientsServed != len(archs) || m.Exchanges < uint64(len(archs)) {
				t.Fatalf("exchanges with dnsmasq incomplete: %d of %d clients served, %s", m.ClientsServed, len(archs), m.Result)
			}
		})
	}
}

// TestLoadgenCountsAgentExchangesOverPair checks the benchmark's default
// fabric against peerboot: every client architecture completes exchanges
// over the veth pair, and the agent counted an ACK for each.
func TestLoadgenCountsAgentExchangesOverPair(t *testing.T) {
	const subnet = "198.18.47.0/24"
	al := startAgent(t, fabricPair, subnet, "--per-mac-rate", "-1", "--global-rate", "-1")
	m := runLoad(t, al.net, subnet, al.agent.Process.Pid, len(archs), time.Second)
	c := al.stop(t)
	t.Logf("peerboot over the pair: %s; cpu %.2fs; agent %+v", m.Result, m.CPUSeconds, c.PXE)
	if m.ClientsServed != len(archs) || m.Exchanges < uint64(len(archs)) {
		t.Fatalf("exchanges with peerboot incomplete: %d of %d clients served, %s", m.ClientsServed, len(archs), m.Result)
	}
	if c.PXE.Acks < m.Exchanges {
		t.Fatalf("agent counted %d ACKs for %d completed exchanges", c.PXE.Acks, m.Exchanges)
	}
}

// checkNamespacesGone fails the test if a namespace of dl's network is
// still there.
func checkNamespacesGone(t *testing.T, dl *dnsmasqLab) {
	if dl == nil {
		return
	}
	for _, h := range []*netlab.Host{dl.net.server, dl.net.load} {
		if _, err := os.Stat("/run/netns/" + h.NS); err == nil {
			t.Errorf("namespace %s still exists after cleanup", h.NS)
		}
	}
}

// Load of the side-by-side benchmark: enough clients to saturate either
// server on two cores, for long enough that the 10 ms CPU-time ticks are
// well below 1% of the figure.
const (
	benchClients  = 64
	benchDuration = 5 * time.Second
)

// BenchmarkProxyDHCP runs the same load against the peerboot standalone
// agent and against dnsmasq in proxy mode, one after the other in one run:
// completed DISCOVER -> OFFER -> REQUEST 4011 -> ACK exchanges per second
// at saturation, their p99 latency, and the server's CPU seconds per 1,000
// exchanges. Each iteration is one full load run; run with -benchtime=1x.
//
// Each server and the load generator share one veth pair and nothing else
// (PXEBENCH_FABRIC=bridge puts both on a netlab bridge instead, with its
// netfilter hooks off unless PXEBENCH_BRIDGE_NF=1).
func BenchmarkProxyDHCP(b *testing.B) {
	fabric := benchFabric(b)
	b.Run("fabric="+fabric, func(b *testing.B) { benchmarkServers(b, fabric) })
}

func benchmarkServers(b *testing.B, fabric string) {
	b.Run("server=peerboot", func(b *testing.B) {
		const subnet = "198.18.44.0/24"
		al := startAgent(b, fabric, subnet, append([]string{"--per-mac-rate", "-1", "--global-rate", "-1", "--log-level", "warn"}, strings.Fields(os.Getenv("PXEBENCH_AGENT_ARGS"))...)...)
		b.Log(al.net.describe(b))
		exchanges := reportLoad(b, al.net, subnet, al.agent.Process.Pid)
		c := al.stop(b)
		if c.PXE.Acks < exchanges {
			b.Fatalf("agent counted %d ACKs for %d completed exchanges", c.PXE.Acks, exchanges)
		}
		b.Logf("agent engine: %d packets in %d reads (%.1f per wake-up), %d dropped by the kernel queue, %d at the ring; "+
			"Go runtime while serving: %d GCs, %d heap objects allocated",
			c.Engine.Received, c.Engine.Reads, float64(c.Engine.Received)/float64(max(c.Engine.Reads, 1)),
			c.Engine.DroppedKernel, c.Engine.DroppedRingFull, c.Runtime.GCs, c.Runtime.Mallocs)
	})
	b.Run("server=dnsmasq", func(b *testing.B) {
		const subnet = "198.18.45.0/24"
		dl := startDnsmasq(b, fabric, subnet)
		b.Log(dl.net.describe(b))
		reportLoad(b, dl.net, subnet, dl.cmd.Process.Pid)
	})
}

// reportLoad runs b.N load runs and reports their figures; it returns the
// exchanges completed.
func reportLoad(b *testing.B, n *benchNet, subnet string, pid int) uint64 {
	var total measured
	var p99 time.Duration
	b.ResetTimer()
	for range b.N {
		m := runLoad(b, n, subnet, pid, benchClients, benchDuration)
		b.Logf("%s; server cpu %.2fs (%.2fs kernel) = %.4f cpu-s/1k", m.Result, m.CPUSeconds, m.SysSeconds, m.cpuPer1k())
		if m.Exchanges == 0 {
			b.Fatalf("no exchange completed: %s", m.Result)
		}
		total.Exchanges += m.Exchanges
		total.Elapsed += m.Elapsed
		total.CPUSeconds += m.CPUSeconds
		p99 = max(p99, m.P99)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total.Exchanges)/total.Elapsed.Seconds(), "exch/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(total.cpuPer1k(), "cpu-s/1k")
	return total.Exchanges
}
