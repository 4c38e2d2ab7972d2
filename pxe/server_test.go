package pxe

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/engine"
)

var testServerIP = netip.MustParseAddr("198.18.0.1")

func newTestServer(t testing.TB, mutate func(*Config, *StaticPolicy)) *Server {
	t.Helper()
	pol := &StaticPolicy{}
	for _, s := range []string{"bios=bios/undionly.0", "efi64=efi/x64.efi", "arm64=efi/aa64.efi",
		"http-efi64=http://198.18.0.1/x64.efi"} {
		if err := pol.Table.Parse(s); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{ServerIP: testServerIP, Decider: pol, PerMACRate: -1, GlobalRate: -1}
	if mutate != nil {
		mutate(&cfg, pol)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request wraps a captured datagram as the engine hands it to a handler.
func request(c capturedPacket) *engine.Packet {
	p := &engine.Packet{Payload: c.payload, SrcIP: c.src.Addr(), DstIP: c.dst.Addr(),
		SrcPort: c.src.Port(), DstPort: c.dst.Port(), SrcMAC: c.srcMAC}
	return p
}

// serve runs one request through the server and decodes the reply.
func serve(t testing.TB, s *Server, req *engine.Packet) (*dhcp.Packet, engine.Destination, *engine.ReplyBuffer, bool) {
	t.Helper()
	rb := engine.NewReplyBuffer()
	if !s.Handle(req, rb) {
		return nil, engine.Destination{}, rb, false
	}
	var out dhcp.Packet
	if err := out.Decode(rb.Payload); err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	a, err := engine.AddressingFromBOOTP(rb.Payload)
	if err != nil {
		t.Fatal(err)
	}
	dst := engine.Route(a, req)
	if rb.DstPort != 0 {
		dst.Port = rb.DstPort
	}
	return &out, dst, rb, true
}

func vendorClass(p *dhcp.Packet) string {
	v, _ := p.VendorClassRaw()
	return string(v)
}

func TestRepliesToFirmwareCorpus(t *testing.T) {
	ovmf := loadCapture(t, ovmfCapture)
	bios := loadCapture(t, seabiosCapture)
	tests := []struct {
		name      string
		req       capturedPacket
		ipxeFile  string // iPXE script configured
		wantType  dhcp.MessageType
		wantFile  string
		want43    bool
		wantItem  bool // 43.71 boot item echoed
		wantRoute engine.RouteKind
		wantPort  uint16
	}{
		{"OVMF DISCOVER", findRequest(t, ovmf, 1, 67, 0), "", dhcp.Offer, "", false, false, engine.RouteBroadcast, 68},
		{"OVMF 4011 REQUEST", findRequest(t, ovmf, 3, 4011, 0), "", dhcp.Ack, "efi/x64.efi", false, false, engine.RouteCIAddr, 4011},
		{"iPXE ROM DISCOVER", findRequest(t, bios, 1, 67, 0), "", dhcp.Offer, "", true, false, engine.RouteBroadcast, 68},
		{"iPXE ROM 4011 REQUEST", findRequest(t, bios, 3, 4011, 0), "", dhcp.Ack, "bios/undionly.0", true, true, engine.RouteCIAddr, 68},
		{"iPXE ROM 4011 REQUEST with script", findRequest(t, bios, 3, 4011, 0), "boot.ipxe", dhcp.Ack, "boot.ipxe", true, true, engine.RouteCIAddr, 68},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, func(_ *Config, p *StaticPolicy) { p.Table.IPXEScript = tt.ipxeFile })
			req := request(tt.req)
			var in dhcp.Packet
			if err := in.Decode(req.Payload); err != nil {
				t.Fatal(err)
			}
			out, dst, _, ok := serve(t, s, req)
			if !ok {
				t.Fatalf("no reply; stats %+v", s.Stats())
			}
			if mt, _ := out.MessageType(); mt != tt.wantType {
				t.Errorf("type %v, want %v", mt, tt.wantType)
			}
			if out.Op != dhcp.OpReply || out.XID != in.XID || out.CHAddr != in.CHAddr || out.Flags != in.Flags {
				t.Errorf("header not copied: op %d xid %x chaddr %x flags %x", out.Op, out.XID, out.CHAddr[:6], out.Flags)
			}
			if out.YIAddr != [4]byte{} {
				t.Errorf("ProxyDHCP reply assigns yiaddr %v", out.YIAddr)
			}
			if out.SIAddr != testServerIP.As4() {
				t.Errorf("siaddr %v", out.SIAddr)
			}
			if sid, _ := out.ServerID(); sid != testServerIP.As4() {
				t.Errorf("server id %v", sid)
			}
			if vendorClass(out) != "PXEClient" {
				t.Errorf("option 60 %q", vendorClass(out))
			}
			inID, _ := in.Lookup(dhcp.OptClientMachineID)
			outID, ok := out.Lookup(dhcp.OptClientMachineID)
			if !ok || !bytes.Equal(inID, outID) {
				t.Errorf("option 97 not echoed: %x vs %x", outID, inID)
			}
			if got := string(out.BootFile()); got != tt.wantFile {
				t.Errorf("boot file %q, want %q", got, tt.wantFile)
			}
			v, has43 := out.PXEOptions()
			if has43 != tt.want43 {
				t.Errorf("option 43 present %v, want %v", has43, tt.want43)
			}
			if has43 && tt.wantType == dhcp.Offer {
				if dc, _ := v.DiscoveryControl(); dc != discoveryControl {
					t.Errorf("discovery control %#x", dc)
				}
				it := v.BootServers()
				if !it.Next() || it.Type() != bootServerType || it.NumAddrs() != 1 || it.Addr(0) != testServerIP.As4() {
					t.Errorf("boot servers sub-option wrong")
				}
				m := v.BootMenu()
				if !m.Next() || m.Type() != bootServerType {
					t.Errorf("boot menu sub-option wrong")
				}
			}
			if _, _, item := v.BootItem(); item != tt.wantItem {
				t.Errorf("boot item present %v, want %v", item, tt.wantItem)
			}
			if dst.Kind != tt.wantRoute || dst.Port != tt.wantPort {
				t.Errorf("routed %v to port %d, want %v port %d", dst.Kind, dst.Port, tt.wantRoute, tt.wantPort)
			}
			if len(out.Bytes()) < dhcp.MinBOOTPSize || len(out.Bytes()) > in.MaxReplySize() {
				t.Errorf("reply size %d outside [300, %d]", len(out.Bytes()), in.MaxReplySize())
			}
		})
	}
}
