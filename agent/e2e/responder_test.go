package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/agent/lab"
)

// TestResponderReferralThroughARealRelay: clients in a branch subnet whose
// switch drops DHCP server traffic from agents (DHCP snooping, emulated
// with ebtables on the bridge) boot through dnsmasq as DHCP relay and the
// responder in the core subnet, which refers each client to an agent of its
// own subnet.
func TestResponderReferralThroughARealRelay(t *testing.T) {
	testResponder(t, "referral", "198.18.87.0/24", "198.18.88.0/24")
}

// TestResponderForwardMode: the original product's scheme, agents on
// 2067/2068 behind the responder.
func TestResponderForwardMode(t *testing.T) {
	testResponder(t, "forward", "198.18.91.0/24", "198.18.92.0/24")
}

func testResponder(t *testing.T, mode, branch, core string) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var agentArgs []string
	if mode == "forward" {
		agentArgs = []string{"--snooping"}
	}
	s := startSite(t, ctx, branch, lab.Options{Agents: 2, ImageBytes: 512 << 10, CoreSubnet: core, AgentArgs: agentArgs})
	for _, a := range s.Agents {
		out, err := exec.Command("ip", "netns", "exec", s.Lab.HubNS(), "ebtables", "-A", "FORWARD", "-s", a.Host.MAC,
			"-p", "IPv4", "--ip-proto", "udp", "--ip-sport", "67", "-j", "DROP").CombinedOutput()
		if err != nil {
			t.Fatalf("ebtables: %v: %s", err, out)
		}
	}
	// Without the responder nobody answers: snooping drops the agents' offers.
	c := s.NewClient(3)
	c.Tries = 1
	if res, err := s.Boot(ctx, c); err == nil {
		t.Fatalf("booted with snooping and no responder (offer from %v)", res.Server)
	}
	rh, err := s.AddCoreHost("responder", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartProc(ctx, "responder", rh, "responder", "--interface", "eth0", "--central-url", s.CentralURL,
		"--central-token", s.AdminToken, "--mode", mode, "--metrics-listen", rh.Addr.String()+":9121", "--log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartCommand("relay", s.Router, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--log-dhcp", "--pid-file=", "--dhcp-relay="+s.Router.Addr.String()+","+rh.Addr.String()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		c := s.NewClient(20 + i)
		res, err := s.Boot(ctx, c)
		if err != nil {
			t.Fatalf("client %d through the relay: %v", i, err)
		}
		t.Logf("client %d: %d DISCOVERs, offer after %v, boot %v", i, res.Discovers, res.OfferAfter, res.Duration)
		switch {
		case mode == "referral" && res.Server != rh.Addr:
			t.Errorf("client %d: offer from %v, want the responder %v", i, res.Server, rh.Addr)
		case mode == "forward" && s.AgentIndex(res.Server) < 0:
			t.Errorf("client %d: offer from %v, want an agent of its subnet", i, res.Server)
		}
		if res.Offers != 1 {
			t.Errorf("client %d: %d offers", i, res.Offers)
		}
		if s.AgentIndex(res.TFTPServer) < 0 {
			t.Errorf("client %d: boot file from %v, want an agent of its subnet", i, res.TFTPServer)
		}
		if res.Bytes != fileSize(s, res.BootFile) {
			t.Errorf("client %d: %d bytes of %s", i, res.Bytes, res.BootFile)
		}
	}
	// Plain DHCP from a machine that is not PXE firmware is dropped and
	// counted; nobody answers it.
	metricURL := "http://" + rh.Addr.String() + ":9121/metrics"
	dropped := `peerboot_pxe_dropped_total{reason="not_pxe"}`
	if mode == "forward" {
		dropped = `peerboot_responder_dropped_total{reason="not_pxe"}`
	}
	before, _ := s.Get(ctx, metricURL)
	err = s.Clients.Do(func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 68})
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := unix.SetsockoptInt(fd(conn), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
			return err
		}
		unix.SetsockoptString(fd(conn), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "eth0")
		m, _ := dhcpv4.NewDiscovery(net.HardwareAddr{2, 9, 9, 9, 9, 9}, dhcpv4.WithBroadcast(true))
		if _, err := conn.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return nil // nothing answered
			}
			if r, err := dhcpv4.FromBytes(buf[:n]); err == nil && r.TransactionID == m.TransactionID && r.OpCode == dhcpv4.OpcodeBootReply {
				return fmt.Errorf("a plain DHCP client got an answer from %v", r.ServerIdentifier())
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.Get(ctx, metricURL)
	if sample(after, dropped) <= sample(before, dropped) {
		t.Errorf("%s did not count the plain DHCP DISCOVER (before %v, after %v)", dropped, sample(before, dropped), sample(after, dropped))
	}
}

func fd(c *net.UDPConn) int {
	rc, _ := c.SyscallConn()
	var n int
	rc.Control(func(f uintptr) { n = int(f) })
	return n
}
