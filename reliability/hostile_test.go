package reliability

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/agent/pxesim"
	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/internal/netlab"
)

// hostileFrames makes n frames that an attacker on the segment could send:
// random bytes behind an Ethernet header, broken IPv4 and UDP headers,
// fragments, garbage to the DHCP and boot-server ports, and PXE DISCOVERs
// from random MACs with mangled options. Every frame stays inside the lab:
// Ethernet destination broadcast or the agent, IPv4 destination broadcast
// or the agent's address.
func hostileFrames(n int, seed uint64, agentMAC frame.MAC, agentIP [4]byte, prefix netip.Prefix) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0xfeed))
	bcastMAC := frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	randBytes := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	randMAC := func() frame.MAC {
		var m frame.MAC
		copy(m[:], randBytes(6))
		m[0] = m[0]&0xfe | 0x02 // unicast, locally administered
		return m
	}
	labIP := func() [4]byte {
		a := prefix.Addr().As4()
		a[3] = byte(1 + r.IntN(253))
		return a
	}
	ports := []uint16{67, 68, 4011, 2067, 69, 2012}
	frames := make([][]byte, 0, n)
	for len(frames) < n {
		h := frame.Header{Eth: frame.Ethernet{Dst: bcastMAC, Src: randMAC(), EtherType: frame.EtherTypeIPv4},
			IP:  frame.IPv4{TTL: 64, Protocol: 17, Src: labIP(), Dst: [4]byte{255, 255, 255, 255}},
			UDP: frame.UDP{SrcPort: 68, DstPort: 67}}
		if r.IntN(2) == 0 {
			h.Eth.Dst, h.IP.Dst = agentMAC, agentIP
		}
		var payload []byte
		kind := r.IntN(8)
		switch kind {
		case 0: // random bytes after an Ethernet header of a random type
			f := make([]byte, 14, 14+1500)
			copy(f, h.Eth.Dst[:])
			copy(f[6:], h.Eth.Src[:])
			et := uint16(r.Uint32())
			if et == frame.EtherTypeIPv4 {
				et++
			}
			binary.BigEndian.PutUint16(f[12:], et)
			frames = append(frames, append(f, randBytes(r.IntN(1500))...))
			continue
		case 1: // random payload to a random service port
			h.UDP.DstPort = ports[r.IntN(len(ports))]
			payload = randBytes(r.IntN(1400))
		case 2, 3, 4: // a PXE DISCOVER (or boot-server REQUEST) with mangled options
			var b dhcp.Builder
			buf := make([]byte, 1500)
			mt := dhcp.Discover
			if kind == 4 {
				mt, h.UDP.DstPort, h.UDP.SrcPort = dhcp.Request, 4011, 4011
			}
			b.Start(buf, mt, 1500)
			b.SetXID(r.Uint32())
			b.SetCHAddr(1, h.Eth.Src[:])
			b.AddUint16(dhcp.OptClientArch, uint16(r.IntN(12)))
			b.AddString(dhcp.OptVendorClass, "PXEClient:Arch:00007:UNDI:003016")
			for k := r.IntN(6); k > 0; k-- {
				b.AddOption(uint8(r.IntN(254)+1), randBytes(r.IntN(40)))
			}
			m, err := b.Finish()
			if err != nil {
				continue
			}
			m[0] = dhcp.OpRequest
			payload = append([]byte(nil), m...)
			// Mangle: flip bytes, cut it short, or break an option length.
			switch r.IntN(4) {
			case 0:
				for k := 1 + r.IntN(8); k > 0; k-- {
					payload[r.IntN(len(payload))] = byte(r.Uint32())
				}
			case 1:
				payload = payload[:r.IntN(len(payload))]
			case 2:
				if len(payload) > 250 {
					payload[240+r.IntN(len(payload)-241)] = 0xff
				}
			}
		case 5: // broken IPv4 or UDP header fields
			payload = randBytes(r.IntN(600))
			h.Mode = frame.Verbatim
			h.IP.TotalLen = uint16(r.Uint32())
			h.IP.Checksum = uint16(r.Uint32())
			h.UDP.Length = uint16(r.Uint32())
			h.UDP.Checksum = uint16(r.Uint32())
		case 6: // fragments to the DHCP port
			h.IP.Flags = frame.FlagMoreFragments
			h.IP.FragOffset = uint16(r.IntN(100))
			payload = randBytes(8 + r.IntN(1000))
		case 7: // tagged frames and IP options
			h.Eth.Tagged, h.Eth.VLAN.ID = true, uint16(r.IntN(4096))
			h.IP.Options = randBytes(4 * (1 + r.IntN(10)))
			payload = randBytes(r.IntN(600))
		}
		f, err := frame.Append(nil, &h, payload)
		if err != nil {
			continue
		}
		if len(f) < 60 {
			f = append(f, make([]byte, 60-len(f))...)
		}
		frames = append(frames, f)
	}
	return frames
}

// flood sends frames round robin from a raw socket of the attacker's
// namespace until stop closes; it returns frames sent and sends refused
// (queue full).
func flood(h *netlab.Host, frames [][]byte, senders int, stop <-chan struct{}) (sent, refused uint64, err error) {
	var fd int
	err = h.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
		unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("attacker socket: %w", err)
	}
	defer unix.Close(fd)
	var s, rf atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; ; i++ {
				if i%256 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
				if _, err := unix.Write(fd, frames[i%len(frames)]); err != nil {
					rf.Add(1)
					continue
				}
				s.Add(1)
			}
		}(g)
	}
	wg.Wait()
	return s.Load(), rf.Load(), nil
}

// bootClients boots simulated PXE clients one after another from the
// clients' namespace until stop closes (or n clients when stop is nil),
// and returns booted and failed counts.
func bootClients(t *testing.T, h *netlab.Host, first, n int, stop <-chan struct{}, want map[uint16]int64) (booted, failed int, errs []string) {
	for i := first; n <= 0 || i < first+n; i++ {
		if stop != nil {
			select {
			case <-stop:
				return
			default:
			}
		}
		arch := []uint16{0, 7, 11}[i%3]
		c := &pxesim.Client{MAC: net.HardwareAddr{0x02, 0x66, 0, 0, byte(i >> 8), byte(i)}, Arch: arch, Interface: "eth0",
			Addr: h.Addr, Tries: 6, Wait: time.Second, Blksize: 1468, Windowsize: 8}
		var res pxesim.Result
		err := h.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var err error
			res, err = c.Boot(ctx, io.Discard)
			return err
		})
		if err == nil && res.Bytes == want[arch] {
			booted++
			continue
		}
		failed++
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("client %d (arch %d): %v, %d bytes of %d", i, arch, err, res.Bytes, want[arch]))
		}
	}
	return
}

// TestHostileTrafficAgainstAgent floods a real `peerboot agent
// --standalone` with malformed and random frames at the rate one raw
// socket can produce, while simulated PXE clients boot from it. The agent
// must not crash, its RSS must grow less than 10%, the drops must show in
// its counters, and the clients must boot during and after the flood.
// PEERBOOT_HOSTILE_DURATION sets the flood's length (default 10s, 60s with
// the build tag "reliability"; the
// figures in docs/RELIABILITY.md are from 60s), PEERBOOT_HOSTILE_GOGC the
// agent's GOGC (default: unset, the agent's own setting),
// PEERBOOT_HOSTILE_KEEP_LOG a file to copy the agent's log to.
func TestHostileTrafficAgainstAgent(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Fatalf("needs root (network namespaces, raw sockets): %v", err)
	}
	dur := durationSetting(t, "PEERBOOT_HOSTILE_DURATION", defaultHostileDuration)
	l, err := netlab.New("198.18.121.0/24")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	agentHost, err := l.AddHost("agent", "198.18.121.1")
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := l.AddHost("attacker", "198.18.121.66")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := l.AddHost("clients", "198.18.121.200")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "tftp")
	os.MkdirAll(root, 0o755)
	want := map[uint16]int64{0: 64 << 10, 7: 256 << 10, 11: 128 << 10}
	names := map[uint16]string{0: "bios.0", 7: "x64.efi", 11: "aa64.efi"}
	for arch, size := range want {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*int(arch+3) + i>>9)
		}
		if err := os.WriteFile(filepath.Join(root, names[arch]), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stats := filepath.Join(dir, "stats.json")
	cmd := agentHost.Command(context.Background(), peerboot(t), "agent", "--standalone", "--interface", "eth0", "--tftp-root", root,
		"--bootfile", "bios=bios.0", "--bootfile", "efi64=x64.efi", "--bootfile", "arm64=aa64.efi", "--stats-file", stats, "--log-level", "warn")
	// The agent runs with its own garbage collector setting (as users run
	// it) unless PEERBOOT_HOSTILE_GOGC says otherwise; gctrace reports the
	// live heap after each cycle.
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	if v := gogc(); v != "default" {
		cmd.Env = append(cmd.Env, "GOGC="+v)
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := l.Start(cmd); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		out, _ := agentHost.Command(context.Background(), "ss", "-Hlun").Output()
		if strings.Contains(string(out), ":4011 ") && strings.Contains(string(out), ":69 ") {
			break
		}
		if i == 200 {
			t.Fatalf("agent not listening after 20s: %s", tailFile(filepath.Join(dir, "agent.log"), 10))
		}
		time.Sleep(100 * time.Millisecond) // polling the agent's sockets with a bound
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "peerboot" {
		t.Fatalf("PID %d is %q, not the agent", pid, comm)
	}
	// Warm up with real clients so the baseline holds what serving needs.
	if ok, bad, errs := bootClients(t, clients, 0, 6, nil, want); bad != 0 {
		t.Fatalf("before the flood %d of %d clients failed: %v", bad, ok+bad, errs)
	}
	t.Logf("before: %s", memLine(pid))
	gcBefore := liveHeaps(logPath)
	rss0, err := rssKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	agentMAC, _ := net.ParseMAC(agentHost.MAC)
	var am frame.MAC
	copy(am[:], agentMAC)
	frames := hostileFrames(8192, 1, am, agentHost.Addr.As4(), l.Prefix)

	stop := make(chan struct{})
	var peak atomic.Int64
	var wg sync.WaitGroup
	var sent, refused uint64
	var floodErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent, refused, floodErr = flood(attacker, frames, 2, stop)
	}()
	var during, duringBad int
	var duringErrs []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		during, duringBad, duringErrs = bootClients(t, clients, 100, 0, stop, want)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for n := 0; ; n++ {
			if r, err := rssKiB(pid); err == nil && r > peak.Load() {
				peak.Store(r)
			}
			if n%25 == 0 {
				t.Logf("%4.0fs: %s", float64(n)/5, memLine(pid))
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	select {
	case <-time.After(dur):
	case <-exited:
	}
	close(stop)
	wg.Wait()
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	select {
	case <-exited:
		t.Fatalf("the agent died under the flood: %s", tailFile(filepath.Join(dir, "agent.log"), 20))
	default:
	}
	rss1, err := rssKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	gcDuring := liveHeaps(logPath)[len(gcBefore):]
	after, afterBad, afterErrs := bootClients(t, clients, 5000, 10, nil, want)

	cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not exit 20s after SIGTERM")
	}
	var st struct {
		Engine map[string]uint64 `json:"engine"`
		PXE    map[string]uint64 `json:"pxe"`
		TFTP   map[string]uint64 `json:"tftp"`
	}
	b, err := os.ReadFile(stats)
	if err != nil {
		t.Fatalf("stats file: %v: %s", err, tailFile(filepath.Join(dir, "agent.log"), 10))
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("stats %q: %v", b, err)
	}
	if keep := os.Getenv("PEERBOOT_HOSTILE_KEEP_LOG"); keep != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "agent.log")); err == nil {
			os.WriteFile(keep, b, 0o644)
		}
	}
	growth := float64(rss1-rss0) / float64(rss0) * 100
	t.Logf("flood %v: %d frames sent (%.0f/s), %d sends refused by a full queue; agent RSS %d KiB before, %d KiB after (%+.1f%%), peak %d KiB; clients booted during %d (failed %d), after %d (failed %d)",
		dur, sent, float64(sent)/dur.Seconds(), refused, rss0, rss1, growth, peak.Load(), during, duringBad, after, afterBad)
	t.Logf("agent counters: %s", b)
	t.Logf("GOGC=%s; live heap (MB) after the last collection before the flood %v, after each during it %v", gogc(), lastOf(gcBefore), gcDuring)
	if len(gcBefore) > 0 {
		for _, live := range gcDuring {
			if live > lastOf(gcBefore)[0]+1 {
				t.Errorf("live heap rose from %d MB to %d MB during the flood", lastOf(gcBefore)[0], live)
				break
			}
		}
	}
	if growth >= 10 {
		t.Errorf("agent RSS grew %.1f%% (%d -> %d KiB), want under 10%%", growth, rss0, rss1)
	}
	if afterBad != 0 {
		t.Errorf("after the flood %d of %d clients failed: %v", afterBad, after+afterBad, afterErrs)
	}
	if during == 0 || duringBad > during/10 {
		t.Errorf("during the flood %d clients booted and %d failed: %v", during, duringBad, duringErrs)
	}
	if sent < uint64(dur.Seconds())*1000 {
		t.Errorf("only %d frames sent in %v: the flood did not happen", sent, dur)
	}
	// Every packet the PXE server handled has exactly one fate: answered,
	// or dropped and counted under a reason.
	fates := []string{"Offers", "Acks", "Malformed", "NotPXE", "WrongPort", "RateLimited", "Ignored", "Aborted", "DecideErrors", "BuildErrors"}
	var sum uint64
	for _, f := range fates {
		sum += st.PXE[f]
	}
	if sum != st.PXE["Handled"] || st.PXE["Handled"] != st.Engine["Received"] {
		t.Errorf("packets unaccounted for: engine received %d, PXE handled %d, sum of fates %v = %d", st.Engine["Received"], st.PXE["Handled"], fates, sum)
	}
	if st.PXE["Malformed"] == 0 || st.PXE["RateLimited"] == 0 || st.TFTP["Malformed"] == 0 {
		t.Errorf("the flood's malformed PXE (%d), rate-limited (%d) and malformed TFTP (%d) requests were not all counted",
			st.PXE["Malformed"], st.PXE["RateLimited"], st.TFTP["Malformed"])
	}
}

// gogc is the GOGC the agent runs with in the hostile test
// (PEERBOOT_HOSTILE_GOGC; "default" when unset: the agent's own setting).
func gogc() string {
	if v := os.Getenv("PEERBOOT_HOSTILE_GOGC"); v != "" {
		return v
	}
	return "default"
}

// liveHeaps reads the live heap (MB) after each collection from a Go
// program's gctrace lines ("gc N @...: ..., A->B->C MB, ...").
func liveHeaps(logPath string) []int {
	b, _ := os.ReadFile(logPath)
	var out []int
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		for _, f := range strings.Split(line, ", ") {
			if !strings.HasSuffix(f, " MB") || strings.Count(f, "->") != 2 {
				continue
			}
			parts := strings.Split(strings.TrimSuffix(f, " MB"), "->")
			var live int
			fmt.Sscan(parts[2], &live)
			out = append(out, live)
		}
	}
	return out
}

func lastOf(v []int) []int {
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1:]
}
