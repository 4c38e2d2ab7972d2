package codec

import (
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/peerboot/peerboot/codec/dhcp"
)

// dhcpDiscover is the DHCPDISCOVER of an OVMF (UEFI x64) PXE boot, the UDP
// payload of a real capture.
func dhcpDiscover(b *testing.B) []byte {
	b.Helper()
	msg, err := os.ReadFile("testdata/dhcp-ovmf-uefi-discover.bin")
	if err != nil {
		b.Fatal(err)
	}
	return msg
}

var dhcpSink int

// dhcpCPUTimer reports, besides the wall-clock ns/op, the CPU time the
// benchmark's own thread used per operation ("cpu-ns/op"). On a shared
// machine the wall clock also counts time the thread waited for a core;
// thread CPU time does not, so it keeps side-by-side ratios meaningful.
func dhcpCPUTimer(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start := dhcpThreadCPU(b)
	return func() {
		used := dhcpThreadCPU(b) - start
		runtime.UnlockOSThread()
		if b.N > 0 {
			b.ReportMetric(float64(used)/float64(b.N), "cpu-ns/op")
		}
	}
}

func dhcpThreadCPU(b *testing.B) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return ts.Nano()
}

// dhcpClass is what a PXE server needs to decide about a client.
type dhcpClass struct {
	msgType    dhcp.MessageType
	kind       dhcp.VendorKind // PXEClient, HTTPClient or other (option 60)
	arch       dhcp.Arch       // option 93, else the arch in option 60
	undiMajor  uint16
	undiMinor  uint16
	guid       [16]byte // SMBIOS UUID from option 97
	guidUsable bool
}

// dhcpClassify fills c from a decoded request.
func dhcpClassify(p *dhcp.Packet, c *dhcpClass) {
	c.msgType, _ = p.MessageType()
	vc, _ := p.VendorClass()
	c.kind, c.undiMajor, c.undiMinor = vc.Kind, vc.UNDIMajor, vc.UNDIMinor
	a, ok := p.ClientArch()
	if !ok {
		a = vc.Arch
	}
	c.arch = a
	c.guidUsable = false
	if id, ok := p.ClientMachineID(); ok {
		c.guid, c.guidUsable = id.UUID, id.Usable()
	}
}

// BenchmarkDHCPDiscover decodes the same UEFI PXE DISCOVER with peerboot
// (and classifies it: message type, architecture from 93 and 60, UNDI
// version, SMBIOS GUID), insomniacslk/dhcp FromBytes and gopacket's
// DHCPv4 DecodeFromBytes with a reused layer.
func BenchmarkDHCPDiscover(b *testing.B) {
	msg := dhcpDiscover(b)
	b.Run("peerboot-decode-classify", func(b *testing.B) {
		var p dhcp.Packet
		var c dhcpClass
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			if err := p.Decode(msg); err != nil {
				b.Fatal(err)
			}
			dhcpClassify(&p, &c)
			if c.msgType != dhcp.Discover || c.arch != dhcp.ArchEFIX64 || c.kind != dhcp.VendorPXE || c.undiMajor != 3 || !c.guidUsable {
				b.Fatal("misclassified")
			}
			dhcpSink += int(c.guid[15])
		}
		stop()
	})
	b.Run("peerboot-decode-classify-guidstring", func(b *testing.B) {
		var p dhcp.Packet
		var c dhcpClass
		guid := make([]byte, 0, 36)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			if err := p.Decode(msg); err != nil {
				b.Fatal(err)
			}
			dhcpClassify(&p, &c)
			id := dhcp.MachineID{UUID: c.guid}
			guid = id.AppendGUID(guid[:0])
			if c.arch != dhcp.ArchEFIX64 || len(guid) != 36 {
				b.Fatal("misclassified")
			}
		}
		stop()
	})
	b.Run("insomniacslk-FromBytes", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			d, err := dhcpv4.FromBytes(msg)
			if err != nil {
				b.Fatal(err)
			}
			dhcpSink += len(d.Options)
		}
		stop()
	})
	b.Run("gopacket-DecodeFromBytes", func(b *testing.B) {
		var d layers.DHCPv4
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			if err := d.DecodeFromBytes(msg, gopacket.NilDecodeFeedback); err != nil {
				b.Fatal(err)
			}
			dhcpSink += len(d.Options)
		}
		stop()
	})
}

var (
	dhcpServerIP = [4]byte{198, 18, 0, 1}
	// dhcpPXE43 is the option 43 both OFFER builders write: discovery control
	// 3, boot server 0x8000 at 198.18.0.1, menu "peerboot", prompt "PXE".
	dhcpPXE43 = []byte{6, 1, 3, 8, 7, 0x80, 0, 1, 198, 18, 0, 1, 9, 11, 0x80, 0, 8, 'p', 'e', 'e', 'r', 'b', 'o', 'o', 't',
		10, 4, 0, 'P', 'X', 'E', 255}
)

// BenchmarkDHCPOffer builds the ProxyDHCP OFFER for the UEFI DISCOVER:
// op reply, xid/chaddr/flags from the request, siaddr, 53, 54, 60
// "PXEClient", 97 echoed, 43 PXE sub-options.
func BenchmarkDHCPOffer(b *testing.B) {
	msg := dhcpDiscover(b)
	b.Run("peerboot-Builder", func(b *testing.B) {
		var req dhcp.Packet
		if err := req.Decode(msg); err != nil {
			b.Fatal(err)
		}
		var bld dhcp.Builder
		buf := make([]byte, 1500)
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			bld.StartReply(buf, &req, dhcp.Offer)
			bld.SetSIAddr(dhcpServerIP)
			bld.AddServerID(dhcpServerIP)
			bld.AddString(dhcp.OptVendorClass, "PXEClient")
			bld.EchoOption(&req, dhcp.OptClientMachineID)
			bld.BeginPXE()
			bld.PXEDiscoveryControl(3)
			bld.PXEBootServer(0x8000, dhcpServerIP)
			bld.PXEBootMenu(dhcp.MenuItem{Type: 0x8000, Description: "peerboot"})
			bld.PXEMenuPrompt(0, "PXE")
			bld.EndPXE()
			out, err := bld.Finish()
			if err != nil {
				b.Fatal(err)
			}
			dhcpSink += len(out)
		}
		stop()
	})
	b.Run("insomniacslk-New-ToBytes", func(b *testing.B) {
		req, err := dhcpv4.FromBytes(msg)
		if err != nil {
			b.Fatal(err)
		}
		sid := net.IP(dhcpServerIP[:])
		b.ReportAllocs()
		stop := dhcpCPUTimer(b)
		for b.Loop() {
			resp, err := dhcpv4.New(
				dhcpv4.WithReply(req),
				dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
				dhcpv4.WithServerIP(sid),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)),
				dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
				dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier),
				dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, dhcpPXE43),
			)
			if err != nil {
				b.Fatal(err)
			}
			dhcpSink += len(resp.ToBytes())
		}
		stop()
	})
}

// TestDHCPOfferBuildersAgree checks that both OFFER benchmarks build the
// same message content, so the comparison is like for like.
func TestDHCPOfferBuildersAgree(t *testing.T) {
	msg, err := os.ReadFile("testdata/dhcp-ovmf-uefi-discover.bin")
	if err != nil {
		t.Fatal(err)
	}
	var req dhcp.Packet
	if err := req.Decode(msg); err != nil {
		t.Fatal(err)
	}
	var bld dhcp.Builder
	bld.StartReply(make([]byte, 1500), &req, dhcp.Offer)
	bld.SetSIAddr(dhcpServerIP)
	bld.AddServerID(dhcpServerIP)
	bld.AddString(dhcp.OptVendorClass, "PXEClient")
	bld.EchoOption(&req, dhcp.OptClientMachineID)
	bld.BeginPXE()
	bld.PXEDiscoveryControl(3)
	bld.PXEBootServer(0x8000, dhcpServerIP)
	bld.PXEBootMenu(dhcp.MenuItem{Type: 0x8000, Description: "peerboot"})
	bld.PXEMenuPrompt(0, "PXE")
	bld.EndPXE()
	ours, err := bld.Finish()
	if err != nil {
		t.Fatal(err)
	}
	ireq, err := dhcpv4.FromBytes(msg)
	if err != nil {
		t.Fatal(err)
	}
	sid := net.IP(dhcpServerIP[:])
	resp, err := dhcpv4.New(dhcpv4.WithReply(ireq), dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithServerIP(sid),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		dhcpv4.WithOptionCopied(ireq, dhcpv4.OptionClientMachineIdentifier),
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, dhcpPXE43))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := dhcpv4.FromBytes(resp.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	var p dhcp.Packet
	if err := p.Decode(ours); err != nil {
		t.Fatal(err)
	}
	if p.XID != uint32(theirs.TransactionID[0])<<24|uint32(theirs.TransactionID[1])<<16|uint32(theirs.TransactionID[2])<<8|uint32(theirs.TransactionID[3]) ||
		!net.IP(p.SIAddr[:]).Equal(theirs.ServerIPAddr) || theirs.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("headers differ: ours xid %#x siaddr %v, theirs %v", p.XID, p.SIAddr, theirs.Summary())
	}
	for _, code := range []uint8{dhcp.OptServerID, dhcp.OptVendorClass, dhcp.OptClientMachineID, dhcp.OptVendorSpecific} {
		got, _ := p.Lookup(code)
		want := theirs.GetOneOption(dhcpv4.GenericOptionCode(code))
		if string(got) != string(want) || len(got) == 0 {
			t.Errorf("option %d: ours %x, insomniacslk %x", code, got, want)
		}
	}
}
