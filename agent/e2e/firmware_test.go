package e2e

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/internal/firmlab"
)

// TestResponderReferralBootsRealUEFIFirmware: an OVMF guest on a branch
// subnet with DHCP snooping (agents' DHCP answers dropped on the bridge)
// gets its address from a DHCP server and its boot server from the
// responder, both in the core subnet through a dnsmasq relay, and fetches
// its boot file by TFTP from an agent of its own subnet.
func TestResponderReferralBootsRealUEFIFirmware(t *testing.T) {
	needLab(t)
	if err := firmlab.Available(); err != nil {
		t.Fatalf("firmware tests need QEMU and OVMF: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fl, err := firmlab.New("198.18.93.0/24", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	s := startSite(t, ctx, "", lab.Options{Net: fl.Net, Agents: 2, ImageBytes: 512 << 10, CoreSubnet: "198.18.94.0/24"})
	for i := range s.Agents {
		if err := s.SnoopDHCP(i); err != nil {
			t.Fatal(err)
		}
	}
	relayed, err := s.StartRelayed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := &firmlab.Guest{Firmware: firmlab.OVMF, MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x93, 0, 1}, UUID: "7e57b007-0000-4000-8000-000000000093", Name: "uefi"}
	if err := fl.StartGuest(ctx, g); err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	deadline := time.Now().Add(150 * time.Second)
	for {
		evs, err := s.Events(ctx, "transfer")
		if err == nil {
			for _, e := range evs {
				var d struct{ File, Outcome, Client string }
				json.Unmarshal(e.Detail, &d)
				if d.Outcome == "complete" && d.File == "demo-x64/bootx64.efi" && strings.HasPrefix(d.Client, "198.18.93.1") {
					t.Logf("OVMF at %s fetched %s from agent %s through the responder after %v", d.Client, d.File, e.AgentID, time.Since(g.Started()).Round(time.Second))
					m, err := s.Get(ctx, relayed.ResponderMetricsURL())
					if err != nil || sample(m, "peerboot_responder_referred_total") < 1 {
						t.Fatalf("the responder referred nobody (%v): %s", err, m)
					}
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("OVMF never fetched its boot file from an agent (responder and relay logs above)")
		}
		time.Sleep(500 * time.Millisecond) // polling Central's events with a deadline
	}
}
