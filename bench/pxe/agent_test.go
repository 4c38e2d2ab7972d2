package pxebench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/internal/netlab"
)

// agentCounters mirrors the JSON the agent writes on exit.
type agentCounters struct {
	Engine struct {
		Received, Reads, Filtered, DroppedRingFull, DroppedKernel, Malformed, Ignored, Sent uint64
	} `json:"engine"`
	PXE struct {
		Handled, Malformed, NotPXE, WrongPort, Offers, Acks, RelayedOffers uint64
	} `json:"pxe"`
	Runtime struct {
		GCs     uint32 `json:"gcs"`
		Mallocs uint64 `json:"mallocs"`
	} `json:"runtime"`
}

type agentLab struct {
	net      *benchNet
	agent    *exec.Cmd
	stats    string
	log      string
	serverIP netip.Addr
}

// startAgent starts the standalone agent in the server namespace of a new
// benchNet on subnet (fabric fabricBridge or fabricPair); extra are more
// agent flags.
func startAgent(t testing.TB, fabric, subnet string, extra ...string) *agentLab {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "peerboot")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/peerboot/peerboot/cmd/peerboot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "tftp")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	n := newBenchNet(t, fabric, subnet, "boot")
	al := &agentLab{net: n, stats: filepath.Join(dir, "stats.json"), serverIP: n.server.Addr}
	args := append([]string{"agent", "--standalone", "--interface", "eth0", "--tftp-root", root,
		"--bootfile", "bios=bios.0", "--bootfile", "efi64=x64.efi", "--bootfile", "arm64=aa64.efi",
		"--stats-file", al.stats}, extra...)
	al.agent = n.server.Command(context.Background(), bin, args...)
	logPath := filepath.Join(dir, "agent.log")
	al.log = logPath
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	al.agent.Stdout, al.agent.Stderr = logf, logf
	if err := startOnPinnedThread(t, n.start, al.agent); err != nil {
		t.Fatal(err)
	}
	n.waitListening(t, logPath, ":4011 ")
	return al
}

// startOnPinnedThread starts cmd (through start, which records it for the
// lab's Close) from an OS thread that stays alive until the test ends, so
// nothing tied to the forking thread's life can end the process early.
func startOnPinnedThread(t testing.TB, start func(*exec.Cmd) error, cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- start(cmd)
		<-release
	}()
	return <-errc
}

// stop ends the agent with SIGTERM and reads the counters it wrote.
func (al *agentLab) stop(t testing.TB) agentCounters {
	t.Helper()
	_ = al.agent.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- al.agent.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10s of SIGTERM")
	}
	var c agentCounters
	b, err := os.ReadFile(al.stats)
	if err != nil {
		l, _ := os.ReadFile(al.log)
		t.Fatalf("agent counters: %v\nagent log:\n%s", err, l)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("agent counters %q: %v", b, err)
	}
	return c
}

// pxeRequest builds a client DISCOVER; vendor "" makes a non-PXE client.
func pxeRequest(mac [6]byte, vendor string, giaddr [4]byte) []byte {
	var b dhcp.Builder
	buf := make([]byte, 600)
	b.Start(buf, dhcp.Discover, 1500)
	b.SetXID(binary.BigEndian.Uint32(mac[2:]))
	b.SetCHAddr(1, mac[:])
	b.SetGIAddr(giaddr)
	if giaddr != [4]byte{} {
		b.SetHops(1)
	}
	b.AddUint16(dhcp.OptClientArch, 7)
	if vendor != "" {
		b.AddString(dhcp.OptVendorClass, vendor)
	}
	m, _ := b.Finish()
	m[0] = dhcp.OpRequest
	return m
}

// exchange sends msg from a UDP socket bound to local and returns the first
// BOOTP reply for xid within wait (nil if none).
func exchange(t *testing.T, h *netlab.Host, local, to netip.AddrPort, msg []byte, wait time.Duration) (reply []byte, from netip.AddrPort) {
	t.Helper()
	err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		buf := make([]byte, 2048)
		for {
			_ = c.SetReadDeadline(deadline)
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			if err != nil {
				return err
			}
			if n >= 240 && buf[0] == dhcp.OpReply && string(buf[4:8]) == string(msg[4:8]) {
				reply, from = append([]byte(nil), buf[:n]...), src
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return reply, from
}

func TestAgentAnswersPXEOnlyAndRelays(t *testing.T) {
	al := startAgent(t, fabricBridge, "198.18.42.0/24")
	plain, err := al.net.lab.AddHost("plain", "198.18.42.4")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := al.net.lab.AddHost("relay", "198.18.42.250")
	if err != nil {
		t.Fatal(err)
	}
	server67 := netip.AddrPortFrom(al.serverIP, 67)
	any68 := netip.MustParseAddrPort("0.0.0.0:68")

	// A non-PXE DISCOVER gets nothing ...
	if r, _ := exchange(t, plain, any68, server67, pxeRequest([6]byte{2, 0, 0, 0, 0, 1}, "", [4]byte{}), 1500*time.Millisecond); r != nil {
		t.Fatal("non-PXE DISCOVER was answered")
	}
	if r, _ := exchange(t, plain, any68, server67, pxeRequest([6]byte{2, 0, 0, 0, 0, 2}, "MSFT 5.0", [4]byte{}), 1500*time.Millisecond); r != nil {
		t.Fatal("Windows DHCP DISCOVER was answered")
	}
	// ... while the same DISCOVER from a PXE client gets an OFFER.
	r, _ := exchange(t, plain, any68, server67, pxeRequest([6]byte{2, 0, 0, 0, 0, 3}, "PXEClient:Arch:00007:UNDI:003000", [4]byte{}), 3*time.Second)
	if r == nil {
		t.Fatal("PXE DISCOVER not answered")
	}
	// A relayed DISCOVER is answered to the relay, on port 67.
	giaddr := [4]byte{198, 18, 42, 250}
	r, from := exchange(t, relay, netip.MustParseAddrPort("198.18.42.250:67"), server67,
		pxeRequest([6]byte{2, 0, 0, 0, 0, 4}, "PXEClient:Arch:00000:UNDI:002001", giaddr), 3*time.Second)
	if r == nil {
		al.stop(t)
		l, _ := os.ReadFile(al.log)
		t.Fatalf("relayed DISCOVER not answered to the relay\n%s", l)
	}
	var p dhcp.Packet
	if err := p.Decode(r); err != nil {
		t.Fatal(err)
	}
	if mt, _ := p.MessageType(); mt != dhcp.Offer || p.GIAddr != giaddr || from != server67 {
		t.Fatalf("relay got %v giaddr %v from %v", mt, p.GIAddr, from)
	}
	c := al.stop(t)
	if c.PXE.NotPXE < 2 || c.PXE.Offers != 2 || c.PXE.RelayedOffers != 1 {
		t.Fatalf("agent counters %+v", c.PXE)
	}
}

// floodFrames sends n malformed or non-PXE frames to the agent.
func floodFrames(h *netlab.Host, to netip.Addr, toMAC frame.MAC, n int) (int, error) {
	sent := 0
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var src frame.MAC
		copy(src[:], ifi.HardwareAddr)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], toMAC[:])
		good := pxeRequest([6]byte{2, 9, 9, 9, 9, 9}, "PXEClient:Arch:00007", [4]byte{})
		for i := 0; i < n; i++ {
			payload := good
			switch i % 4 {
			case 0:
				payload = good[:100] // truncated BOOTP
			case 1:
				payload = make([]byte, 300) // zeros: no cookie
			case 2:
				payload = pxeRequest([6]byte{2, 8, 0, 0, byte(i >> 8), byte(i)}, "", [4]byte{}) // not PXE
			case 3:
				payload = append([]byte(nil), good...)
				payload[2] = 200 // hlen > 16
			}
			h := frame.Header{Eth: frame.Ethernet{Dst: toMAC, Src: src},
				IP:  frame.IPv4{TTL: 64, Src: [4]byte{198, 18, 43, 3}, Dst: to.As4()},
				UDP: frame.UDP{SrcPort: 68, DstPort: 67}}
			b, err := frame.Append(nil, &h, payload)
			if err != nil {
				return err
			}
			if unix.Sendto(fd, b, 0, sa) == nil {
				sent++
			}
		}
		return nil
	})
	return sent, err
}

func TestFloodOfMalformedFramesWhileClientsAreServed(t *testing.T) {
	al := startAgent(t, fabricBridge, "198.18.43.0/24", "--per-mac-rate", "-1", "--global-rate", "-1")
	load := al.net.load
	flood, err := al.net.lab.AddHost("flood", "198.18.43.3")
	if err != nil {
		t.Fatal(err)
	}
	var agentMAC frame.MAC
	hw, _ := net.ParseMAC(al.net.server.MAC)
	copy(agentMAC[:], hw)
	const floodN = 20000
	floodDone := make(chan int, 1)
	resc := make(chan Result, 1)
	errc := make(chan error, 2)
	go func() {
		errc <- load.Do(func() error {
			r, err := Run(context.Background(), Config{Interface: "eth0", Clients: 8, Duration: 3 * time.Second,
				ClientNet: netip.MustParsePrefix("198.18.43.0/24")})
			resc <- r
			return err
		})
	}()
	go func() {
		n, err := floodFrames(flood, al.serverIP, agentMAC, floodN)
		floodDone <- n
		errc <- err
	}()
	sent := <-floodDone
	r := <-resc
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	c := al.stop(t)
	t.Logf("load during flood: %s; flood frames sent %d; agent %+v", r, sent, c)
	if sent < floodN*9/10 {
		t.Fatalf("only %d flood frames sent", sent)
	}
	if r.Exchanges < 100 {
		t.Fatalf("clients starved during the flood: %s", r)
	}
	dropped := c.Engine.Malformed + c.Engine.DroppedRingFull + c.PXE.Malformed + c.PXE.NotPXE
	if dropped < uint64(sent)*9/10 {
		t.Fatalf("only %d of %d flood frames counted as dropped: %+v", dropped, sent, c)
	}
	if c.PXE.Acks < r.Exchanges {
		t.Fatalf("agent counted %d ACKs for %d completed exchanges", c.PXE.Acks, r.Exchanges)
	}
}
