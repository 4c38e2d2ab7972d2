//go:build osboot

package osboot_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/internal/firmlab"
)

// TestRelayedSnoopingSiteBootsLinux is the DHCP-snooping variant: the
// guests' subnet has one peerboot agent, but the switch drops DHCP server
// traffic from it (ebtables on the bridge, as DHCP snooping does); the DHCP
// server and the peerboot responder sit in a core subnet behind a router
// running a real relay (dnsmasq --dhcp-relay). The responder refers each
// relayed PXE DISCOVER to the agent of the guest's subnet, which serves
// the 4011 request and TFTP: OVMF and SeaBIOS+iPXE boot Linux.
func TestRelayedSnoopingSiteBootsLinux(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := newOSLabWithoutDHCP(t, ctx, "198.18.50.0/24")
	siteDir := filepath.Join(l.dir, "site")
	if err := os.Mkdir(siteDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := lab.Start(ctx, lab.Options{Exe: l.bin, Net: l.Net, Agents: 1, ImageBytes: 64 << 10,
		CoreSubnet: "198.18.51.0/24", Dir: siteDir})
	if err != nil {
		t.Fatal(err)
	}
	logs := []string{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range logs {
				b, _ := os.ReadFile(p)
				t.Logf("--- %s (tail):\n%s", filepath.Base(p), tail(b, 30))
			}
		}
		s.Close()
		if s.Core != nil {
			s.Core.Close() // the site leaves its core subnet to its creator
		}
	})
	for _, p := range append([]*lab.Proc{s.Central}, s.Agents...) {
		logs = append(logs, p.Log)
	}
	files := map[string][]byte{}
	for _, name := range []string{l.art.EFINBP, l.art.BIOSNBP, l.art.Script, l.art.Kernel, l.art.Initrd} {
		b, err := os.ReadFile(l.art.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	const imageID = "linux-x64"
	if _, err := s.AddImage(ctx, imageID, model.ArchX64, 100, files); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	// DHCP snooping: the agent's DHCP server messages never reach clients.
	agent := s.Agents[0]
	if out, err := exec.Command("ip", "netns", "exec", s.Lab.HubNS(), "ebtables", "-A", "FORWARD", "-s", agent.Host.MAC,
		"-p", "IPv4", "--ip-proto", "udp", "--ip-sport", "67", "-j", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("ebtables: %v: %s", err, out)
	}
	rh, err := s.AddCoreHost("responder", 3)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.StartProc(ctx, "responder", rh, "responder", "--interface", "eth0", "--central-url", s.CentralURL,
		"--central-token", s.AdminToken, "--metrics-listen", rh.Addr.String()+":9121", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	dh, err := s.AddCoreHost("dhcp", 4)
	if err != nil {
		t.Fatal(err)
	}
	dhcp, err := s.StartCommand("dhcp", dh, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--log-dhcp",
		"--pid-file=", "--dhcp-leasefile="+filepath.Join(l.dir, "leases"), "--dhcp-authoritative",
		"--dhcp-range="+l.Addr(100).String()+","+l.Addr(150).String()+",255.255.255.0,10m")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := s.StartCommand("relay", s.Router, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--log-dhcp",
		"--pid-file=", "--dhcp-relay="+s.Router.Addr.String()+","+dh.Addr.String(),
		"--dhcp-relay="+s.Router.Addr.String()+","+rh.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	logs = append(logs, resp.Log, dhcp.Log, relay.Log)
	for _, p := range []*lab.Proc{dhcp, relay} {
		if err := l.WaitUDPListen(ctx, p.Host, 67, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	guests := []*guest{
		newGuest(firmlab.OVMF, "ovmf", "52:54:00:50:00:11", "c6a01800-0000-4000-8000-000000005011"),
		newGuest(firmlab.SeaBIOSiPXE, "seabios", "52:54:00:50:00:10", "c6a01800-0000-4000-8000-000000005010"),
	}
	l.bootAll(t, ctx, guests...)
	l.capture.Stop()
	l.saveCapture(t, "peerboot-relayed-linux-boots.pcap")
	rep, err := firmlab.Read(l.pcap)
	if err != nil {
		t.Fatal(err)
	}
	agentIP := s.AgentAddr(0)
	for _, gu := range guests {
		t.Run(gu.g.Name, func(t *testing.T) {
			requireBooted(t, gu)
			in := readInterop(rep, gu, agentIP)
			for _, f := range []string{l.art.Kernel, l.art.Initrd} {
				if !in.requested[imageID+"/"+f] {
					t.Errorf("%s: no TFTP request for %s/%s to the agent %v in the capture", gu.g.Name, imageID, f, agentIP)
				}
			}
			// Its PXE offers came through the relay (from the router); the
			// agent's own were dropped by the switch (the capture on the
			// bridge sees them before the drop).
			relayed := false
			for _, m := range rep.Messages(gu.g.MAC.String()) {
				relayed = relayed || (m.Op == 2 && m.Type == 2 && m.VendorClass == "PXEClient" && m.Src.Addr() == s.Router.Addr)
			}
			if !relayed {
				t.Errorf("%s: no PXE offer relayed by the router %v", gu.g.Name, s.Router.Addr)
			}
			for _, d := range in.discover {
				t.Logf("INTEROP %s (relayed) DISCOVER %s", in.firmware, d)
			}
		})
	}
	if m, err := s.Get(ctx, "http://"+rh.Addr.String()+":9121/metrics"); err != nil || !strings.Contains(m, "peerboot_responder_referred_total") {
		t.Errorf("responder metrics: %v", err)
	}
}
