package pxe

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/engine"
)

// synthRequest builds a client request with the codec's builder (which
// writes replies) and turns it into a request.
func synthRequest(t testing.TB, mt dhcp.MessageType, mac [6]byte, arch uint16, vendor, userClass string, giaddr [4]byte, relayInfo []byte) []byte {
	t.Helper()
	var b dhcp.Builder
	buf := make([]byte, 1500)
	b.Start(buf, mt, 1500)
	b.SetXID(0x01020304)
	b.SetCHAddr(1, mac[:])
	b.SetGIAddr(giaddr)
	b.AddUint16(dhcp.OptMaxMessageSize, 1472)
	b.AddUint16(dhcp.OptClientArch, arch)
	if vendor != "" {
		b.AddString(dhcp.OptVendorClass, vendor)
	}
	if userClass != "" {
		b.AddString(dhcp.OptUserClass, userClass)
	}
	b.AddOption(dhcp.OptClientMachineID, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	if relayInfo != nil {
		b.AddOption(dhcp.OptRelayAgentInfo, relayInfo)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	m[0] = dhcp.OpRequest
	return append([]byte(nil), m...)
}

func discoverTo(payload []byte, port uint16) *engine.Packet {
	return &engine.Packet{Payload: payload, SrcIP: netip.IPv4Unspecified(), DstIP: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		SrcPort: 68, DstPort: port}
}

var macA = [6]byte{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}

func TestOnlyPXEClientsAreAnswered(t *testing.T) {
	s := newTestServer(t, nil)
	ovmf := loadCapture(t, ovmfCapture)
	notPXE := findRequest(t, ovmf, 1, 67, 0)
	plain := append([]byte(nil), notPXE.payload...)
	// rewrite option 60 from PXEClient:... to an OS DHCP client's class
	i := bytes.Index(plain, []byte("PXEClient"))
	copy(plain[i:], "MSFT 5.0 ")
	tests := []struct {
		name  string
		pkt   *engine.Packet
		count func(Stats) uint64
	}{
		{"OS DHCP client", discoverTo(plain, 67), func(s Stats) uint64 { return s.NotPXE }},
		{"no vendor class", discoverTo(synthRequest(t, dhcp.Discover, macA, 7, "", "", [4]byte{}, nil), 67), func(s Stats) uint64 { return s.NotPXE }},
		{"REQUEST to the DHCP server on 67", request(findRequest(t, ovmf, 3, 67, 0)), func(s Stats) uint64 { return s.WrongPort }},
		{"DISCOVER on 4011", discoverTo(notPXE.payload, 4011), func(s Stats) uint64 { return s.WrongPort }},
		{"a server's reply", discoverTo(func() []byte { b := append([]byte(nil), notPXE.payload...); b[0] = 2; return b }(), 67), func(s Stats) uint64 { return s.Malformed }},
		{"truncated", discoverTo(notPXE.payload[:200], 67), func(s Stats) uint64 { return s.Malformed }},
		{"unknown architecture", discoverTo(synthRequest(t, dhcp.Discover, macA, 17, "PXEClient:Arch:00017", "", [4]byte{}, nil), 67), func(s Stats) uint64 { return s.DecideErrors }},
	}
	for _, tt := range tests {
		before := tt.count(s.Stats())
		if _, _, _, ok := serve(t, s, tt.pkt); ok {
			t.Errorf("%s: answered", tt.name)
		}
		if tt.count(s.Stats()) != before+1 {
			t.Errorf("%s: not counted: %+v", tt.name, s.Stats())
		}
	}
	if st := s.Stats(); st.Offers != 0 || st.Acks != 0 {
		t.Fatalf("replies written: %+v", st)
	}
}

func TestRelayedDiscoverGoesToRelay(t *testing.T) {
	s := newTestServer(t, nil)
	relay := [4]byte{198, 18, 9, 1}
	req := discoverTo(synthRequest(t, dhcp.Discover, macA, 7, "PXEClient:Arch:00007:UNDI:003000", "", relay, nil), 67)
	req.SrcIP, req.SrcPort = netip.AddrFrom4(relay), 67
	out, dst, _, ok := serve(t, s, req)
	if !ok {
		t.Fatalf("relayed DISCOVER not answered: %+v", s.Stats())
	}
	if out.GIAddr != relay {
		t.Errorf("giaddr %v not copied", out.GIAddr)
	}
	if !out.Broadcast() {
		t.Errorf("relayed reply without the broadcast flag (flags %#04x): the relay cannot deliver it", out.Flags)
	}
	if dst.Kind != engine.RouteRelay || dst.IP != netip.AddrFrom4(relay) || dst.Port != 67 {
		t.Errorf("routed to %v %v:%d, want the relay on 67", dst.Kind, dst.IP, dst.Port)
	}
	if s.Stats().RelayedOffers != 1 {
		t.Errorf("relayed offer not counted")
	}
}

type recordingDecider struct {
	got Client
	d   Decision
}

func (r *recordingDecider) Decide(_ context.Context, c *Client) (Decision, error) {
	r.got = *c
	r.got.Vendor = append([]byte(nil), c.Vendor...)
	r.got.UserClass = append([]byte(nil), c.UserClass...)
	r.got.CircuitID = append([]byte(nil), c.CircuitID...)
	r.got.RemoteID = append([]byte(nil), c.RemoteID...)
	return r.d, nil
}

func TestDeciderSeesClient(t *testing.T) {
	other := netip.MustParseAddr("198.18.0.7")
	rec := &recordingDecider{d: Decision{Action: Boot, BootFile: "chosen.efi", Server: other}}
	s := newTestServer(t, func(c *Config, _ *StaticPolicy) { c.Decider = rec })
	relay := [4]byte{198, 18, 9, 1}
	info := []byte{1, 3, 'e', 't', '1', 2, 2, 'r', 'x'}
	req := discoverTo(synthRequest(t, dhcp.Discover, macA, 11, "PXEClient:Arch:00011:UNDI:003000", "iPXE", relay, info), 67)
	out, _, _, ok := serve(t, s, req)
	if !ok {
		t.Fatalf("not answered: %+v", s.Stats())
	}
	g := rec.got
	if g.MAC != macA || g.Arch != ArchEFIARM64 || g.Class != ClassARM64 || !g.HasArch || g.Kind != MsgDiscover {
		t.Errorf("identity wrong: %+v", g)
	}
	if !g.HasGUID || g.GUID != [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16} {
		t.Errorf("GUID %x %v", g.GUID, g.HasGUID)
	}
	if !g.IPXE || string(g.UserClass) != "iPXE" || string(g.Vendor) != "PXEClient:Arch:00011:UNDI:003000" {
		t.Errorf("classes wrong: ipxe %v user %q vendor %q", g.IPXE, g.UserClass, g.Vendor)
	}
	if g.GIAddr != netip.AddrFrom4(relay) || string(g.CircuitID) != "et1" || string(g.RemoteID) != "rx" {
		t.Errorf("relay info wrong: %v %q %q", g.GIAddr, g.CircuitID, g.RemoteID)
	}
	// iPXE on UEFI gets the file in the OFFER, from the decided server
	if string(out.BootFile()) != "chosen.efi" || out.SIAddr != other.As4() {
		t.Errorf("offer file %q siaddr %v", out.BootFile(), out.SIAddr)
	}
	for _, a := range []Action{Ignore, Abort} {
		rec.d = Decision{Action: a}
		if _, _, _, ok := serve(t, s, req); ok {
			t.Errorf("%v answered", a)
		}
	}
	if st := s.Stats(); st.Ignored != 1 || st.Aborted != 1 {
		t.Errorf("ignore/abort not counted: %+v", st)
	}
	rec.d = Decision{Action: Abort, BootFile: "abort.efi"}
	if out, _, _, ok := serve(t, s, req); !ok || string(out.BootFile()) != "abort.efi" {
		t.Errorf("abort with an exit NBP not served")
	}
}

func TestHTTPBootOffer(t *testing.T) {
	s := newTestServer(t, nil)
	req := discoverTo(synthRequest(t, dhcp.Discover, macA, 16, "HTTPClient:Arch:00016:UNDI:003001", "", [4]byte{}, nil), 67)
	out, _, _, ok := serve(t, s, req)
	if !ok {
		t.Fatalf("HTTP boot client not answered: %+v", s.Stats())
	}
	if vendorClass(out) != "HTTPClient" || string(out.BootFile()) != "http://198.18.0.1/x64.efi" {
		t.Errorf("HTTP boot offer: 60=%q file=%q", vendorClass(out), out.BootFile())
	}
	if _, has := out.PXEOptions(); has {
		t.Error("HTTP boot offer carries PXE option 43")
	}
}

func TestSnoopingPorts(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *StaticPolicy) { c.Snooping = true })
	ovmf := loadCapture(t, ovmfCapture)
	disc := findRequest(t, ovmf, 1, 67, 0).payload
	if _, _, _, ok := serve(t, s, discoverTo(disc, 67)); ok {
		t.Error("snooping server answered on 67")
	}
	out, dst, _, ok := serve(t, s, discoverTo(disc, 2067))
	if !ok || dst.Port != 2068 {
		t.Fatalf("DISCOVER on 2067: answered %v, port %d", ok, dst.Port)
	}
	if mt, _ := out.MessageType(); mt != dhcp.Offer {
		t.Errorf("type %v", mt)
	}
	reqPkt := request(findRequest(t, ovmf, 3, 4011, 0))
	reqPkt.DstPort = 2067
	out, dst, _, ok = serve(t, s, reqPkt)
	if !ok || dst.Port != 2068 || string(out.BootFile()) != "efi/x64.efi" {
		t.Fatalf("REQUEST on 2067: answered %v port %d", ok, dst.Port)
	}
}

func TestRateLimits(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *StaticPolicy) {
		c.PerMACRate, c.PerMACBurst = 1, 3
		c.GlobalRate, c.GlobalBurst = 1, 5
	})
	clock := int64(1e15)
	s.now = func() int64 { return clock }
	answered := func(mac [6]byte, n int) int {
		k := 0
		for range n {
			req := discoverTo(synthRequest(t, dhcp.Discover, mac, 7, "PXEClient:Arch:00007", "", [4]byte{}, nil), 67)
			if _, _, _, ok := serve(t, s, req); ok {
				k++
			}
		}
		return k
	}
	if n := answered(macA, 10); n != 3 {
		t.Fatalf("one MAC got %d answers in an instant, want its burst of 3", n)
	}
	if n := answered([6]byte{0x52, 0x54, 0, 0, 0, 2}, 10); n != 2 {
		t.Fatalf("second MAC got %d, want the 2 left of the global burst of 5", n)
	}
	if s.Stats().RateLimited != 15 {
		t.Fatalf("rate-limited count %d, want 15", s.Stats().RateLimited)
	}
	clock += 2e9
	if n := answered(macA, 1); n != 1 {
		t.Fatal("MAC not answered again after 2 s")
	}
}

// TestRateLimitUsesArrivalStamp: a packet stamped by the engine is rate
// limited at its arrival time, not at the time the server reads the clock.
func TestRateLimitUsesArrivalStamp(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *StaticPolicy) {
		c.PerMACRate, c.PerMACBurst = 1, 1
		c.GlobalRate = -1
	})
	s.now = func() int64 { t.Fatal("server read the clock for a stamped packet"); return 0 }
	at := int64(1e15)
	answered := func() bool {
		req := discoverTo(synthRequest(t, dhcp.Discover, macA, 7, "PXEClient:Arch:00007", "", [4]byte{}, nil), 67)
		req.Received = at
		_, _, _, ok := serve(t, s, req)
		return ok
	}
	if !answered() {
		t.Fatal("first request not answered")
	}
	if answered() {
		t.Fatal("second request at the same arrival time answered past a burst of 1")
	}
	at += 2e9
	if !answered() {
		t.Fatal("request arriving 2 s later not answered")
	}
}

func TestRetriesGetSameAnswer(t *testing.T) {
	s := newTestServer(t, nil)
	ovmf := loadCapture(t, ovmfCapture)
	req := request(findRequest(t, ovmf, 3, 4011, 0))
	_, _, rb, ok := serve(t, s, req)
	if !ok {
		t.Fatal("no reply")
	}
	first := append([]byte(nil), rb.Payload...)
	for range 5 {
		_, _, rb, ok := serve(t, s, req)
		if !ok || !bytes.Equal(rb.Payload, first) {
			t.Fatal("a retry got a different reply")
		}
	}
}

func TestGarbageNeverPanics(t *testing.T) {
	s := newTestServer(t, nil)
	ovmf := loadCapture(t, ovmfCapture)
	seed := findRequest(t, ovmf, 1, 67, 0).payload
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		b := append([]byte(nil), seed...)
		switch i % 3 {
		case 0:
			b = b[:r.IntN(len(b))]
		case 1:
			for range 1 + r.IntN(8) {
				b[r.IntN(len(b))] = byte(r.Uint32())
			}
		case 2:
			b = make([]byte, r.IntN(600))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		}
		serve(t, s, discoverTo(b, 67))
	}
	st := s.Stats()
	if st.Handled != 20000 || st.Malformed == 0 {
		t.Fatalf("stats after garbage: %+v", st)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *StaticPolicy) { c.PerMACRate, c.PerMACBurst = 1e9, 1e9 })
	ovmf := loadCapture(t, ovmfCapture)
	bios := loadCapture(t, seabiosCapture)
	cases := map[string]*engine.Packet{
		"OVMF DISCOVER":      request(findRequest(t, ovmf, 1, 67, 0)),
		"OVMF 4011 REQUEST":  request(findRequest(t, ovmf, 3, 4011, 0)),
		"iPXE DISCOVER":      request(findRequest(t, bios, 1, 67, 0)),
		"iPXE 4011 REQUEST":  request(findRequest(t, bios, 3, 4011, 0)),
		"not PXE (DHCP ACK)": request(findRequest(t, ovmf, 3, 67, 0)),
	}
	rb := engine.NewReplyBuffer()
	for name, req := range cases {
		n := testing.AllocsPerRun(1000, func() { rb.Payload = rb.Payload[:0]; s.Handle(req, rb) })
		if n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
	if s.Stats().Offers == 0 || s.Stats().Acks == 0 {
		t.Fatalf("allocation test did not reply: %+v", s.Stats())
	}
}
