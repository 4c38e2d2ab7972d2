package dhcp_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
)

// golden holds what Wireshark 4.0 (tshark -V) shows for a captured packet.
// Empty/zero fields are checked as "absent".
type golden struct {
	file  string
	frame int

	op        uint8
	xid       uint32
	secs      uint16
	flags     uint16
	ciaddr    [4]byte
	yiaddr    [4]byte
	siaddr    [4]byte
	chaddr    string
	sname     string
	bootFile  string
	msgType   dhcp.MessageType
	serverID  [4]byte
	maxSize   uint16
	prl       string // hex of option 55
	vendor    string // option 60
	kind      dhcp.VendorKind
	vcArch    int // -1 when option 60 carries no arch
	undiMajor uint16
	undiMinor uint16
	archs     []dhcp.Arch
	nii       []uint8 // type, major, minor
	clientID  string  // hex of option 61
	guid      string  // SMBIOS GUID string of option 97
	userClass string
	ipxe      bool
	ipxeBusID string // hex of option 175 sub-option 177 (bus id)
	opt67     string
	pxe       *pxeGolden
}

type pxeGolden struct {
	discovery   int // -1 absent
	servers     []bootServer
	menu        []dhcp.MenuItem
	promptTime  int // -1 absent
	prompt      string
	itemType    int // -1 absent
	itemLayer   uint16
	wantRawHex  string
	wantNumSubs int
}

type bootServer struct {
	typ   uint16
	addrs [][4]byte
}

var (
	ovmfPRL   = "0102030405060c0d0f111216171c28292a2b3233363a3b3c4243618081828384858687"
	seaPRL    = "010306070c0f111a2b3c4243778081828384858687afcb"
	ovmfGUID  = "c6a01800-0000-4000-8000-000000000011"
	seaGUID   = "c6a01800-0000-4000-8000-000000000010"
	ovmfVC    = "PXEClient:Arch:00007:UNDI:003000"
	seaVC     = "PXEClient:Arch:00000:UNDI:002001"
	ovmfMAC   = "525400120011"
	seaMAC    = "525400120010"
	ip        = func(a, b, c, d byte) [4]byte { return [4]byte{a, b, c, d} }
	lab1      = ip(198, 18, 0, 1)
	client100 = ip(198, 18, 0, 100)
)

var goldens = []golden{
	{ // OVMF UEFI x64 DISCOVER
		file: "ovmf-uefi-x64-proxydhcp.pcap", frame: 2, op: 1, xid: 0xc174a562, flags: 0x8000, chaddr: ovmfMAC,
		msgType: dhcp.Discover, maxSize: 1472, prl: ovmfPRL, vendor: ovmfVC, kind: dhcp.VendorPXE, vcArch: 7,
		undiMajor: 3, undiMinor: 0, archs: []dhcp.Arch{dhcp.ArchEFIX64}, nii: []uint8{1, 3, 0}, guid: ovmfGUID,
	},
	{ // dnsmasq ProxyDHCP OFFER to OVMF
		file: "ovmf-uefi-x64-proxydhcp.pcap", frame: 4, op: 2, xid: 0xc174a562, flags: 0x8000, siaddr: lab1, chaddr: ovmfMAC,
		msgType: dhcp.Offer, serverID: lab1, vendor: "PXEClient", kind: dhcp.VendorPXE, vcArch: -1, guid: ovmfGUID,
	},
	{ // OVMF REQUEST to the boot server on 4011
		file: "ovmf-uefi-x64-proxydhcp.pcap", frame: 14, op: 1, xid: 0xd6c0527e, ciaddr: client100, chaddr: ovmfMAC,
		msgType: dhcp.Request, maxSize: 1472, prl: ovmfPRL, vendor: ovmfVC, kind: dhcp.VendorPXE, vcArch: 7,
		undiMajor: 3, archs: []dhcp.Arch{dhcp.ArchEFIX64}, nii: []uint8{1, 3, 0}, guid: ovmfGUID,
	},
	{ // dnsmasq ACK on 4011 to OVMF
		file: "ovmf-uefi-x64-proxydhcp.pcap", frame: 15, op: 2, xid: 0xd6c0527e, ciaddr: client100, siaddr: lab1, chaddr: ovmfMAC,
		sname: "198.18.0.1", bootFile: "lab-efi64.efi",
		msgType: dhcp.Ack, serverID: lab1, vendor: "PXEClient", kind: dhcp.VendorPXE, vcArch: -1, guid: ovmfGUID,
	},
	{ // dnsmasq full DHCP ACK with option 67
		file: "ovmf-uefi-x64-fulldhcp.pcap", frame: 6, op: 2, xid: 0x5f22bb9c, flags: 0x8000,
		yiaddr: ip(198, 18, 0, 131), siaddr: lab1, chaddr: ovmfMAC,
		msgType: dhcp.Ack, serverID: lab1, vcArch: -1, opt67: "lab-efi64.efi\x00",
	},
	{ // SeaBIOS + iPXE ROM DISCOVER
		file: "seabios-ipxe-bios-proxydhcp.pcap", frame: 2, op: 1, xid: 0x6ecc4f3e, secs: 4, chaddr: seaMAC,
		msgType: dhcp.Discover, maxSize: 1472, prl: seaPRL, vendor: seaVC, kind: dhcp.VendorPXE, vcArch: 0,
		undiMajor: 2, undiMinor: 1, archs: []dhcp.Arch{dhcp.ArchX86BIOS}, nii: []uint8{1, 2, 1},
		clientID: "01" + seaMAC, guid: seaGUID, userClass: "iPXE", ipxe: true, ipxeBusID: "018086100e",
	},
	{ // dnsmasq ProxyDHCP OFFER with PXE menu (option 43)
		file: "seabios-ipxe-bios-proxydhcp.pcap", frame: 4, op: 2, xid: 0x6ecc4f3e, secs: 4, flags: 0x8000, chaddr: seaMAC,
		msgType: dhcp.Offer, serverID: lab1, vendor: "PXEClient", kind: dhcp.VendorPXE, vcArch: -1, guid: seaGUID,
		pxe: &pxeGolden{
			discovery: 3, promptTime: 0, prompt: "PXE", itemType: -1,
			servers:     []bootServer{{0x8000, [][4]byte{lab1}}},
			menu:        []dhcp.MenuItem{{Type: 0x8000, Description: "lab BIOS"}},
			wantRawHex:  "0601030a04005058450807800001c6120001090b8000086c61622042494f53ff",
			wantNumSubs: 4,
		},
	},
	{ // iPXE REQUEST to 4011 with boot item 71
		file: "seabios-ipxe-bios-proxydhcp.pcap", frame: 24, op: 1, secs: 4, flags: 0x8000, ciaddr: client100, chaddr: seaMAC,
		msgType: dhcp.Request, maxSize: 1472, prl: seaPRL, vendor: "PXEClient", kind: dhcp.VendorPXE, vcArch: -1,
		archs: []dhcp.Arch{dhcp.ArchX86BIOS}, nii: []uint8{1, 2, 1}, clientID: "01" + seaMAC, guid: seaGUID,
		userClass: "iPXE", ipxe: true, ipxeBusID: "018086100e",
		pxe: &pxeGolden{discovery: -1, promptTime: -1, itemType: 0x8000, wantRawHex: "470480000000ff", wantNumSubs: 1},
	},
	{ // dnsmasq ACK on 4011 to iPXE
		file: "seabios-ipxe-bios-proxydhcp.pcap", frame: 25, op: 2, secs: 4, flags: 0x8000, yiaddr: client100, siaddr: lab1,
		chaddr: seaMAC, bootFile: "lab-bios.0",
		msgType: dhcp.Ack, serverID: lab1, vendor: "PXEClient", kind: dhcp.VendorPXE, vcArch: -1, guid: seaGUID,
		pxe: &pxeGolden{discovery: -1, promptTime: -1, itemType: 0x8000, wantRawHex: "470480000000ff", wantNumSubs: 1},
	},
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func optBytes(b []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return b
}

func TestGoldenAccessors(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.file+"#"+itoa(g.frame), func(t *testing.T) {
			var p dhcp.Packet
			if err := p.Decode(corpusFrame(t, g.file, g.frame)); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, &p, g)
		})
	}
}

func checkGolden(t *testing.T, p *dhcp.Packet, g golden) {
	t.Helper()
	if p.Op != g.op || p.XID != g.xid || p.Secs != g.secs || p.Flags != g.flags || p.HType != 1 || p.HLen != 6 || p.Hops != 0 {
		t.Errorf("header op=%d xid=%#x secs=%d flags=%#x htype=%d hlen=%d hops=%d", p.Op, p.XID, p.Secs, p.Flags, p.HType, p.HLen, p.Hops)
	}
	if p.Broadcast() != (g.flags&0x8000 != 0) {
		t.Errorf("Broadcast() = %v", p.Broadcast())
	}
	if p.CIAddr != g.ciaddr || p.YIAddr != g.yiaddr || p.SIAddr != g.siaddr || p.GIAddr != [4]byte{} {
		t.Errorf("addrs ci=%v yi=%v si=%v gi=%v", p.CIAddr, p.YIAddr, p.SIAddr, p.GIAddr)
	}
	if got := hex.EncodeToString(p.HardwareAddr()); got != g.chaddr {
		t.Errorf("HardwareAddr = %s, want %s", got, g.chaddr)
	}
	if string(p.ServerName()) != g.sname || string(p.BootFile()) != g.bootFile {
		t.Errorf("sname %q file %q, want %q %q", p.ServerName(), p.BootFile(), g.sname, g.bootFile)
	}
	if mt, ok := p.MessageType(); !ok || mt != g.msgType {
		t.Errorf("MessageType = %v %v, want %v", mt, ok, g.msgType)
	}
	if sid, ok := p.ServerID(); ok != (g.serverID != [4]byte{}) || sid != g.serverID {
		t.Errorf("ServerID = %v %v, want %v", sid, ok, g.serverID)
	}
	if m, ok := p.MaxMessageSize(); ok != (g.maxSize != 0) || m != g.maxSize {
		t.Errorf("MaxMessageSize = %d %v, want %d", m, ok, g.maxSize)
	}
	wantReply := 548
	if g.maxSize != 0 {
		wantReply = int(g.maxSize) - 28
	}
	if p.MaxReplySize() != wantReply {
		t.Errorf("MaxReplySize = %d, want %d", p.MaxReplySize(), wantReply)
	}
	if got := hex.EncodeToString(optBytes(p.ParamRequestList())); got != g.prl {
		t.Errorf("ParamRequestList = %s, want %s", got, g.prl)
	}
	if g.prl != "" && (!p.Requests(dhcp.OptVendorSpecific) || p.Requests(dhcp.OptRelayAgentInfo)) {
		t.Errorf("Requests(43)=%v Requests(82)=%v", p.Requests(dhcp.OptVendorSpecific), p.Requests(dhcp.OptRelayAgentInfo))
	}
	vc, ok := p.VendorClass()
	if ok != (g.vendor != "") || string(vc.Raw) != g.vendor || vc.Kind != g.kind {
		t.Errorf("VendorClass = %+v %v, want %q kind %v", vc, ok, g.vendor, g.kind)
	}
	if g.vcArch >= 0 {
		if !vc.HasArch || vc.Arch != dhcp.Arch(g.vcArch) || !vc.HasUNDI || vc.UNDIMajor != g.undiMajor || vc.UNDIMinor != g.undiMinor {
			t.Errorf("VendorClass arch/UNDI = %+v, want arch %d UNDI %d.%d", vc, g.vcArch, g.undiMajor, g.undiMinor)
		}
	} else if vc.HasArch || vc.HasUNDI {
		t.Errorf("VendorClass %q parsed an arch: %+v", vc.Raw, vc)
	}
	l, ok := p.ClientArchs()
	if ok != (len(g.archs) > 0) || l.Len() != len(g.archs) {
		t.Errorf("ClientArchs len %d ok %v, want %v", l.Len(), ok, g.archs)
	}
	for i := 0; i < l.Len() && i < len(g.archs); i++ {
		if l.At(i) != g.archs[i] {
			t.Errorf("ClientArchs[%d] = %v, want %v", i, l.At(i), g.archs[i])
		}
	}
	if a, ok := p.ClientArch(); len(g.archs) > 0 && (!ok || a != g.archs[0]) {
		t.Errorf("ClientArch = %v %v", a, ok)
	}
	if n, ok := p.NII(); ok != (g.nii != nil) || (ok && (n.Type != g.nii[0] || n.Major != g.nii[1] || n.Minor != g.nii[2])) {
		t.Errorf("NII = %+v %v, want %v", n, ok, g.nii)
	}
	if got := hex.EncodeToString(optBytes(p.ClientID())); got != g.clientID {
		t.Errorf("ClientID = %s, want %s", got, g.clientID)
	}
	id, ok := p.ClientMachineID()
	if ok != (g.guid != "") {
		t.Errorf("ClientMachineID ok = %v", ok)
	}
	if ok {
		var buf [64]byte
		if got := string(id.AppendGUID(buf[:0])); got != g.guid || id.String() != g.guid || !id.Usable() || id.Type != 0 || len(id.Raw) != 17 {
			t.Errorf("GUID = %s (%s) usable=%v, want %s", got, id.String(), id.Usable(), g.guid)
		}
	}
	if uc := optBytes(p.UserClass()); string(uc) != g.userClass || p.IsIPXE() != g.ipxe {
		t.Errorf("UserClass %q IsIPXE %v, want %q %v", uc, p.IsIPXE(), g.userClass, g.ipxe)
	}
	ix, ok := p.IPXEOptions()
	if ok != (g.ipxeBusID != "") || !ix.Valid() {
		t.Errorf("IPXEOptions ok=%v valid=%v", ok, ix.Valid())
	}
	if ok {
		bus, _ := ix.Lookup(177)
		if hex.EncodeToString(bus) != g.ipxeBusID {
			t.Errorf("iPXE bus id = %x, want %s", bus, g.ipxeBusID)
		}
	}
	if got := string(optBytes(p.BootFileName())); got != g.opt67 {
		t.Errorf("BootFileName = %q, want %q", got, g.opt67)
	}
	for _, code := range []uint8{dhcp.OptHostName, dhcp.OptTFTPServerName, dhcp.OptRelayAgentInfo} {
		if p.Has(code) {
			t.Errorf("option %d present; the capture has none", code)
		}
	}
	if _, ok := p.HostName(); ok {
		t.Error("HostName present")
	}
	if _, ok := p.TFTPServerName(); ok {
		t.Error("TFTPServerName present")
	}
	if _, ok := p.RelayAgentInfo(); ok {
		t.Error("RelayAgentInfo present")
	}
	checkPXE(t, p, g.pxe)
}

func checkPXE(t *testing.T, p *dhcp.Packet, g *pxeGolden) {
	t.Helper()
	v, ok := p.PXEOptions()
	if ok != (g != nil) {
		t.Fatalf("PXEOptions ok = %v, want %v", ok, g != nil)
	}
	if g == nil {
		return
	}
	if !bytes.Equal(v.Sub(), mustHex(t, g.wantRawHex)) || !v.Sub().Valid() {
		t.Errorf("option 43 = %x, want %s", []byte(v), g.wantRawHex)
	}
	n := 0
	for it := v.Sub().Iter(); it.Next(); {
		n++
	}
	if n != g.wantNumSubs {
		t.Errorf("%d sub-options, want %d", n, g.wantNumSubs)
	}
	if d, ok := v.DiscoveryControl(); ok != (g.discovery >= 0) || (ok && int(d) != g.discovery) {
		t.Errorf("DiscoveryControl = %d %v, want %d", d, ok, g.discovery)
	}
	to, pr, ok := v.MenuPrompt()
	if ok != (g.promptTime >= 0) || (ok && (int(to) != g.promptTime || string(pr) != g.prompt)) {
		t.Errorf("MenuPrompt = %d %q %v, want %d %q", to, pr, ok, g.promptTime, g.prompt)
	}
	typ, layer, ok := v.BootItem()
	if ok != (g.itemType >= 0) || (ok && (int(typ) != g.itemType || layer != g.itemLayer)) {
		t.Errorf("BootItem = %#x %d %v, want %#x %d", typ, layer, ok, g.itemType, g.itemLayer)
	}
	var servers []bootServer
	bs := v.BootServers()
	for bs.Next() {
		s := bootServer{typ: bs.Type()}
		for i := 0; i < bs.NumAddrs(); i++ {
			s.addrs = append(s.addrs, bs.Addr(i))
		}
		servers = append(servers, s)
	}
	if bs.Malformed() || len(servers) != len(g.servers) {
		t.Errorf("BootServers = %v malformed=%v, want %v", servers, bs.Malformed(), g.servers)
	}
	for i := range servers {
		if i < len(g.servers) && (servers[i].typ != g.servers[i].typ || len(servers[i].addrs) != len(g.servers[i].addrs) || servers[i].addrs[0] != g.servers[i].addrs[0]) {
			t.Errorf("BootServers[%d] = %v, want %v", i, servers[i], g.servers[i])
		}
	}
	var menu []dhcp.MenuItem
	mi := v.BootMenu()
	for mi.Next() {
		menu = append(menu, dhcp.MenuItem{Type: mi.Type(), Description: string(mi.Description())})
	}
	if mi.Malformed() || len(menu) != len(g.menu) {
		t.Errorf("BootMenu = %v, want %v", menu, g.menu)
	}
	for i := range menu {
		if i < len(g.menu) && menu[i] != g.menu[i] {
			t.Errorf("BootMenu[%d] = %v, want %v", i, menu[i], g.menu[i])
		}
	}
}

// TestCorpusWireOrder checks the option order Decode reports against the
// order tshark lists for the OVMF DISCOVER.
func TestCorpusWireOrder(t *testing.T) {
	var p dhcp.Packet
	if err := p.Decode(corpusFrame(t, "ovmf-uefi-x64-proxydhcp.pcap", 2)); err != nil {
		t.Fatal(err)
	}
	want := []uint8{53, 57, 55, 97, 94, 93, 60}
	var got []uint8
	for it := p.Options(); it.Next(); {
		got = append(got, it.Code())
		if it.Area() != dhcp.AreaOptions {
			t.Errorf("option %d in area %v", it.Code(), it.Area())
		}
	}
	if !bytes.Equal(got, want) || p.NumOptions() != len(want) || !p.HasEnd() || p.Overload() != 0 {
		t.Errorf("wire order %v (n=%d end=%v), want %v", got, p.NumOptions(), p.HasEnd(), want)
	}
}
