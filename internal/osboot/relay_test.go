//go:build osboot

package osboot_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/model"
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
	s := l.startSite(t, ctx, lab.Options{Agents: 1, ImageBytes: 64 << 10, CoreSubnet: "198.18.51.0/24"})
	files := map[string][]byte{}
	for _, name := range []string{l.art.EFINBP, l.art.BIOSNBP, l.art.Script, l.art.Kernel, l.art.Initrd} {
		b, err := os.ReadFile(l.art.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	if _, err := s.AddImage(ctx, linuxImageID, model.ArchX64, 100, files); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	// DHCP snooping: the agent's DHCP server messages never reach clients.
	if err := s.SnoopDHCP(0); err != nil {
		t.Fatal(err)
	}
	relay, err := s.StartRelayed(ctx, "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*lab.Proc{relay.DHCP, relay.Relay} {
		if err := l.WaitUDPListen(ctx, p.Host, 67, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	guests := firmwareGuests(50)
	rep := l.bootAndRead(t, ctx, "peerboot-relayed-linux-boots.pcap", guests...)
	agentIP := s.AgentAddr(0)
	for _, gu := range guests {
		t.Run(gu.g.Name, func(t *testing.T) {
			requireBooted(t, gu)
			in := readInterop(rep, gu, agentIP)
			for _, f := range []string{l.art.Kernel, l.art.Initrd} {
				if !in.requested[linuxImageID+"/"+f] {
					t.Errorf("%s: no TFTP request for %s/%s to the agent %v in the capture", gu.g.Name, linuxImageID, f, agentIP)
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
	if m, err := s.Get(ctx, relay.ResponderMetricsURL()); err != nil || !strings.Contains(m, "peerboot_responder_referred_total") {
		t.Errorf("responder metrics: %v", err)
	}
}
