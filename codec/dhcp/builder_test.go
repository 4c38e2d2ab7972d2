package dhcp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/internal/tsharkcheck"
)

var serverIP = [4]byte{198, 18, 0, 1}

// buildProxyOffer writes the ProxyDHCP OFFER a PXE server sends for req.
func buildProxyOffer(b *dhcp.Builder, buf []byte, req *dhcp.Packet) ([]byte, error) {
	b.StartReply(buf, req, dhcp.Offer)
	b.SetSIAddr(serverIP)
	b.AddServerID(serverIP)
	b.AddString(dhcp.OptVendorClass, "PXEClient")
	b.EchoOption(req, dhcp.OptClientMachineID)
	b.BeginPXE()
	b.PXEDiscoveryControl(0x03)
	b.PXEBootServer(0x8000, serverIP)
	b.PXEBootMenu(dhcp.MenuItem{Type: 0x8000, Description: "peerboot"})
	b.PXEMenuPrompt(0, "PXE")
	b.EndPXE()
	return b.Finish()
}

// buildBootAck writes the ACK to a boot-server REQUEST received on port 4011.
func buildBootAck(b *dhcp.Builder, buf []byte, req *dhcp.Packet) ([]byte, error) {
	b.StartReply(buf, req, dhcp.Ack)
	b.SetSIAddr(serverIP)
	b.SetServerName("198.18.0.1")
	b.SetBootFile("boot/x64/bootmgfw.efi")
	b.AddServerID(serverIP)
	b.AddString(dhcp.OptVendorClass, "PXEClient")
	b.EchoOption(req, dhcp.OptClientMachineID)
	b.AddString(dhcp.OptTFTPServerName, "198.18.0.1")
	b.AddString(dhcp.OptBootFileName, "boot/x64/bootmgfw.efi")
	typ, layer := uint16(0x8000), uint16(0)
	if v, ok := req.PXEOptions(); ok {
		if t, l, ok := v.BootItem(); ok {
			typ, layer = t, l
		}
	}
	b.BeginPXE()
	b.PXEBootItem(typ, layer)
	b.EndPXE()
	return b.Finish()
}

type builtReply struct {
	name    string
	req     *dhcp.Packet
	reply   []byte
	srcPort uint16
	dstPort uint16
}

// builtReplies builds every reply kind for every request in the corpus
// (DISCOVER -> ProxyDHCP OFFER, REQUEST -> boot server ACK).
func builtReplies(t *testing.T) []builtReply {
	t.Helper()
	var out []builtReply
	for _, c := range loadCorpus(t) {
		req := new(dhcp.Packet)
		if err := req.Decode(c.payload); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		mt, _ := req.MessageType()
		var b dhcp.Builder
		buf := make([]byte, 1500)
		var reply []byte
		var err error
		switch {
		case req.Op == dhcp.OpRequest && mt == dhcp.Discover:
			reply, err = buildProxyOffer(&b, buf, req)
		case req.Op == dhcp.OpRequest && mt == dhcp.Request:
			reply, err = buildBootAck(&b, buf, req)
		default:
			continue
		}
		if err != nil {
			t.Fatalf("%s: build: %v", c.name, err)
		}
		dst := c.srcPort
		out = append(out, builtReply{name: c.name, req: req, reply: reply, srcPort: c.dstPort, dstPort: dst})
	}
	if len(out) < 8 {
		t.Fatalf("only %d replies built from the corpus", len(out))
	}
	return out
}

func TestBuilderProxyOfferAndAck(t *testing.T) {
	for _, r := range builtReplies(t) {
		t.Run(r.name, func(t *testing.T) {
			var p dhcp.Packet
			if err := p.Decode(r.reply); err != nil {
				t.Fatal(err)
			}
			req := r.req
			reqType, _ := req.MessageType()
			if len(r.reply) < dhcp.MinBOOTPSize || len(r.reply) > req.MaxReplySize() {
				t.Errorf("reply is %d bytes, want %d..%d", len(r.reply), dhcp.MinBOOTPSize, req.MaxReplySize())
			}
			if p.Op != dhcp.OpReply || p.XID != req.XID || p.Flags != req.Flags || p.CHAddr != req.CHAddr ||
				p.HLen != req.HLen || p.HType != req.HType || p.GIAddr != req.GIAddr || p.SIAddr != serverIP {
				t.Errorf("header does not answer the request: %+v", p)
			}
			if p.YIAddr != [4]byte{} {
				t.Errorf("yiaddr = %v, want 0 (proxy)", p.YIAddr)
			}
			if sid, ok := p.ServerID(); !ok || sid != serverIP {
				t.Errorf("ServerID = %v %v", sid, ok)
			}
			if vc, ok := p.VendorClassRaw(); !ok || string(vc) != "PXEClient" {
				t.Errorf("vendor class %q", vc)
			}
			want97, _ := req.Lookup(dhcp.OptClientMachineID)
			if got, ok := p.Lookup(dhcp.OptClientMachineID); !ok || !bytes.Equal(got, want97) {
				t.Errorf("option 97 = %x, want echo %x", got, want97)
			}
			v, ok := p.PXEOptions()
			if !ok || !v.Sub().Valid() {
				t.Fatalf("option 43 missing or malformed: %x", []byte(v))
			}
			mt, _ := p.MessageType()
			switch reqType {
			case dhcp.Discover:
				if mt != dhcp.Offer || p.CIAddr != [4]byte{} {
					t.Errorf("type %v ciaddr %v", mt, p.CIAddr)
				}
				d, _ := v.DiscoveryControl()
				to, prompt, _ := v.MenuPrompt()
				mi := v.BootMenu()
				bs := v.BootServers()
				if d != 3 || to != 0 || string(prompt) != "PXE" || !mi.Next() || string(mi.Description()) != "peerboot" ||
					mi.Type() != 0x8000 || !bs.Next() || bs.Type() != 0x8000 || bs.NumAddrs() != 1 || bs.Addr(0) != serverIP {
					t.Errorf("PXE sub-options wrong: %x", []byte(v))
				}
			case dhcp.Request:
				if mt != dhcp.Ack || p.CIAddr != req.CIAddr {
					t.Errorf("type %v ciaddr %v, want ACK with ciaddr %v", mt, p.CIAddr, req.CIAddr)
				}
				if string(p.ServerName()) != "198.18.0.1" || string(p.BootFile()) != "boot/x64/bootmgfw.efi" {
					t.Errorf("sname %q file %q", p.ServerName(), p.BootFile())
				}
				if s, _ := p.TFTPServerName(); string(s) != "198.18.0.1" {
					t.Errorf("option 66 %q", s)
				}
				if s, _ := p.BootFileName(); string(s) != "boot/x64/bootmgfw.efi" {
					t.Errorf("option 67 %q", s)
				}
				if typ, layer, ok := v.BootItem(); !ok || typ != 0x8000 || layer != 0 {
					t.Errorf("boot item %#x %d %v", typ, layer, ok)
				}
			}
		})
	}
}

// TestBuilderTshark dissects every builder output, wrapped in Ethernet/IPv4/UDP,
// with tshark: no malformed packet and no expert warning or error.
func TestBuilderTshark(t *testing.T) {
	replies := builtReplies(t)
	var frames [][]byte
	for _, r := range replies {
		src := tsharkcheck.Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 1}, IP: serverIP, Port: r.srcPort}
		dst := tsharkcheck.Endpoint{MAC: [6]byte(r.req.HardwareAddr()), IP: [4]byte{255, 255, 255, 255}, Port: r.dstPort}
		if r.req.CIAddr != [4]byte{} {
			dst.IP = r.req.CIAddr
		}
		f, err := tsharkcheck.UDPFrame(src, dst, r.reply)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	extra := longOptionReply(t)
	f, err := tsharkcheck.UDPFrame(tsharkcheck.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: serverIP, Port: 67},
		tsharkcheck.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 2}, IP: [4]byte{255, 255, 255, 255}, Port: 68}, extra)
	if err != nil {
		t.Fatal(err)
	}
	frames = append(frames, f)
	res := tsharkcheck.CheckFrames(t, frames, tsharkcheck.Options{DHCPPorts: []uint16{4011}, VerifyChecksums: true})
	if !res.Clean() {
		t.Fatalf("tshark found problems in builder output:\n%s", res)
	}
	if res.Protocols["dhcp"] != len(frames) {
		t.Fatalf("tshark dissected %d of %d frames as DHCP: %v", res.Protocols["dhcp"], len(frames), res.Protocols)
	}
}

// longOptionReply builds an OFFER whose PXE menu is longer than 255 bytes,
// so option 43 is split over two instances (RFC 3396).
func longOptionReply(t *testing.T) []byte {
	t.Helper()
	var b dhcp.Builder
	b.Start(make([]byte, 1500), dhcp.Offer, 1472)
	b.SetXID(0x01020304)
	b.SetCHAddr(1, []byte{2, 0, 0, 0, 0, 2})
	b.AddServerID(serverIP)
	b.AddString(dhcp.OptVendorClass, "PXEClient")
	b.BeginPXE()
	b.PXEDiscoveryControl(0x03)
	servers := make([][4]byte, 10)
	for i := range servers {
		servers[i] = [4]byte{198, 18, 0, byte(1 + i)}
	}
	b.PXEBootServer(0x8000, servers...)
	items := make([]dhcp.MenuItem, 6)
	for i := range items {
		items[i] = dhcp.MenuItem{Type: 0x8000 + uint16(i), Description: "Boot image number " + itoa(i) + " of peerboot menu"}
	}
	b.PXEBootMenu(items...)
	b.PXEMenuPrompt(10, "Press F8 for the boot menu")
	b.EndPXE()
	reply, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func TestBuilderSplitsLongOptions(t *testing.T) {
	reply := longOptionReply(t)
	var p dhcp.Packet
	if err := p.Decode(reply); err != nil {
		t.Fatal(err)
	}
	// sub-options of 3, 45, 236 and 29 bytes + End: split between whole
	// sub-options into 48 + 236 + 30 bytes, each instance well formed alone
	var lens []int
	for it := p.Options(); it.Next(); {
		if it.Code() == dhcp.OptVendorSpecific {
			lens = append(lens, len(it.Data()))
			if !dhcp.SubOptions(it.Data()).Valid() {
				t.Errorf("instance %d of option 43 is not well formed alone: %x", len(lens), it.Data())
			}
		}
	}
	if len(lens) != 3 || lens[0] != 48 || lens[1] != 236 || lens[2] != 30 || p.Instances(dhcp.OptVendorSpecific) != 3 {
		t.Fatalf("option 43 instances %v (Instances=%d), want [48 236 30]", lens, p.Instances(dhcp.OptVendorSpecific))
	}
	v, _ := p.PXEOptions()
	if len(v) <= 255 || !v.Sub().Valid() {
		t.Fatalf("joined option 43 is %d bytes, valid=%v", len(v), v.Sub().Valid())
	}
	mi := v.BootMenu()
	n := 0
	for mi.Next() {
		want := "Boot image number " + itoa(n) + " of peerboot menu"
		if string(mi.Description()) != want || mi.Type() != 0x8000+uint16(n) {
			t.Errorf("menu item %d = %#x %q", n, mi.Type(), mi.Description())
		}
		n++
	}
	if n != 6 || mi.Malformed() {
		t.Errorf("%d menu items (malformed=%v), want 6", n, mi.Malformed())
	}
	bs := v.BootServers()
	if !bs.Next() || bs.NumAddrs() != 10 || bs.Addr(9) != [4]byte{198, 18, 0, 10} {
		t.Errorf("boot servers: %d addresses", bs.NumAddrs())
	}
	if to, pr, ok := v.MenuPrompt(); !ok || to != 10 || string(pr) != "Press F8 for the boot menu" {
		t.Errorf("prompt %d %q %v", to, pr, ok)
	}

	// a 600-byte generic option becomes 255 + 255 + 90
	data := bytes.Repeat([]byte("0123456789"), 60)
	var b dhcp.Builder
	b.Start(make([]byte, 1500), dhcp.Ack, 1500)
	b.AddOption(224, data)
	reply, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Decode(reply); err != nil {
		t.Fatal(err)
	}
	lens = lens[:0]
	for it := p.Options(); it.Next(); {
		if it.Code() == 224 {
			lens = append(lens, len(it.Data()))
		}
	}
	got, _ := p.Lookup(224)
	if len(lens) != 3 || lens[0] != 255 || lens[1] != 255 || lens[2] != 90 || !bytes.Equal(got, data) {
		t.Errorf("instances %v, joined %d bytes equal=%v", lens, len(got), bytes.Equal(got, data))
	}
}

func TestBuilderLimits(t *testing.T) {
	discover := corpusFrame(t, "ovmf-uefi-x64-proxydhcp.pcap", 2)
	small := append([]byte(nil), discover...)
	// rewrite option 57 (at 240+3) from 1472 to 576: replies may hold 548 bytes
	if small[243] != 57 || small[244] != 2 {
		t.Fatalf("option 57 not where expected: %x", small[240:248])
	}
	small[245], small[246] = 0x02, 0x40
	var req dhcp.Packet
	if err := req.Decode(small); err != nil {
		t.Fatal(err)
	}
	if req.MaxReplySize() != 548 {
		t.Fatalf("MaxReplySize %d, want 548", req.MaxReplySize())
	}
	// header 240 + option 53 (3) + End (1) leaves 304 bytes of options under 548
	tests := []struct {
		name string
		buf  int
		fill int // bytes of extra option TLVs to add
		want error
	}{
		{"fits exactly", 1500, 304, nil},
		{"one byte over the client's 57", 1500, 305, dhcp.ErrTooLargeForClient},
		{"buffer smaller than the reply", 400, 200, dhcp.ErrBufferTooSmall},
		{"buffer smaller than the BOOTP minimum", 299, 0, dhcp.ErrBufferTooSmall},
		{"buffer smaller than the header", 100, 0, dhcp.ErrBufferTooSmall},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b dhcp.Builder
			b.StartReply(make([]byte, tc.buf), &req, dhcp.Offer)
			switch {
			case tc.fill >= 259:
				b.AddOption(224, bytes.Repeat([]byte{'x'}, 255))
				b.AddOption(225, bytes.Repeat([]byte{'y'}, tc.fill-259))
			case tc.fill >= 2:
				b.AddOption(224, bytes.Repeat([]byte{'x'}, tc.fill-2))
			}
			out, err := b.Finish()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Finish error %v, want %v", err, tc.want)
			}
			if err == nil && len(out) != 548 {
				t.Errorf("reply %d bytes", len(out))
			}
			if err == nil && len(out) > req.MaxReplySize() {
				t.Errorf("reply %d bytes exceeds %d", len(out), req.MaxReplySize())
			}
		})
	}
}

func TestBuilderMisuse(t *testing.T) {
	long := string(bytes.Repeat([]byte{'a'}, 64))
	tests := []struct {
		name string
		do   func(b *dhcp.Builder)
		want error
	}{
		{"EndPXE without BeginPXE", func(b *dhcp.Builder) { b.EndPXE() }, dhcp.ErrBadBuilderUse},
		{"sub-option outside 43", func(b *dhcp.Builder) { b.PXEBootItem(1, 0) }, dhcp.ErrBadBuilderUse},
		{"option inside 43", func(b *dhcp.Builder) { b.BeginPXE(); b.AddByte(1, 1) }, dhcp.ErrBadBuilderUse},
		{"43 left open", func(b *dhcp.Builder) { b.BeginPXE() }, dhcp.ErrBadBuilderUse},
		{"sname of 64 bytes", func(b *dhcp.Builder) { b.SetServerName(long) }, dhcp.ErrFieldTooLong},
		{"file of 128 bytes", func(b *dhcp.Builder) { b.SetBootFile(long + long) }, dhcp.ErrFieldTooLong},
		{"chaddr of 17 bytes", func(b *dhcp.Builder) { b.SetCHAddr(1, make([]byte, 17)) }, dhcp.ErrFieldTooLong},
		{"menu text of 256 bytes", func(b *dhcp.Builder) {
			b.BeginPXE()
			b.PXEBootMenu(dhcp.MenuItem{Description: long + long + long + long})
			b.EndPXE()
		}, dhcp.ErrFieldTooLong},
		{"sname of 63 bytes is fine", func(b *dhcp.Builder) { b.SetServerName(long[:63]) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b dhcp.Builder
			b.Start(make([]byte, 600), dhcp.Offer, 576)
			tc.do(&b)
			_, err := b.Finish()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	var b dhcp.Builder
	b.AddByte(1, 1)
	if _, err := b.Finish(); !errors.Is(err, dhcp.ErrBadBuilderUse) {
		t.Errorf("builder used without Start: %v", err)
	}
	b.Start(make([]byte, 600), dhcp.Offer, 576)
	if _, err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	b.AddByte(1, 1)
	if _, err := b.Finish(); !errors.Is(err, dhcp.ErrBadBuilderUse) {
		t.Errorf("option after Finish: %v", err)
	}
}
