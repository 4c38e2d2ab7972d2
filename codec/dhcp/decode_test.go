package dhcp_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
)

// rawMessage returns a BOOTREQUEST header with the magic cookie followed by
// opts; sname and file are copied into their fields.
func rawMessage(sname, file []byte, opts ...byte) []byte {
	m := make([]byte, 240, 240+len(opts))
	m[0], m[1], m[2] = 1, 1, 6
	copy(m[28:], []byte{0x52, 0x54, 0, 0x12, 0, 0x99})
	copy(m[44:108], sname)
	copy(m[108:236], file)
	copy(m[236:], []byte{99, 130, 83, 99})
	return append(m, opts...)
}

func TestDecodeErrors(t *testing.T) {
	good := rawMessage(nil, nil, 53, 1, 1, 255)
	withHLen := func(h byte) []byte { m := bytes.Clone(good); m[2] = h; return m }
	badCookie := bytes.Clone(good)
	badCookie[238] = 0
	file := make([]byte, 128)
	file[120] = 67
	file[121] = 20 // runs past the 128-byte file field
	tests := []struct {
		name   string
		msg    []byte
		offset int
		field  string
		code   int
		reason string
	}{
		{"empty", nil, 0, "message", -1, dhcp.ReasonTruncatedHeader},
		{"header without cookie", good[:236], 236, "message", -1, dhcp.ReasonTruncatedHeader},
		{"hlen 17", withHLen(17), 2, "hlen", -1, dhcp.ReasonHLen},
		{"hlen 228 (panics gopacket)", withHLen(228), 2, "hlen", -1, dhcp.ReasonHLen},
		{"hlen 255", withHLen(255), 2, "hlen", -1, dhcp.ReasonHLen},
		{"bad cookie", badCookie, 236, "magic cookie", -1, dhcp.ReasonCookie},
		{"option without length", rawMessage(nil, nil, 53, 1, 1, 60), 243, "option", 60, dhcp.ReasonTruncatedOption},
		{"option 60 claims 32 bytes, has 5", rawMessage(nil, nil, 53, 1, 1, 60, 32, 'P', 'X', 'E', 'C', 'l'), 243, "option", 60, dhcp.ReasonOptionOverrun},
		{"overload value 4", rawMessage(nil, nil, 52, 1, 4, 255), 240, "option overload", 52, dhcp.ReasonOverloadValue},
		{"overload of 2 bytes", rawMessage(nil, nil, 52, 2, 1, 1, 255), 240, "option overload", 52, dhcp.ReasonOverloadValue},
		{"empty overload as the last bytes (fuzz crash)", rawMessage(nil, nil, 53, 1, 1, 52, 0), 243, "option overload", 52, dhcp.ReasonOverloadValue},
		{"overload twice", rawMessage(nil, nil, 52, 1, 1, 52, 1, 1, 255), 240, "option overload", 52, dhcp.ReasonOverloadValue},
		{"overloaded file overruns", rawMessage(nil, file, 52, 1, 1, 255), 108 + 120, "option", 67, dhcp.ReasonOptionOverrun},
		{"split options beyond 2048 bytes", longSplit(9), 240, "option", 224, dhcp.ReasonLongOptionsSpace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p dhcp.Packet
			err := p.Decode(tc.msg)
			var de *dhcp.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want *DecodeError", err, err)
			}
			if de.Offset != tc.offset || de.Field != tc.field || de.Code != tc.code || de.Reason != tc.reason {
				t.Fatalf("got %+v, want offset %d field %q code %d reason %q", *de, tc.offset, tc.field, tc.code, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "offset "+itoa(tc.offset)) {
				t.Errorf("message %q lacks field or offset", err)
			}
			if p.Bytes() != nil || p.Has(53) || p.HardwareAddr() != nil {
				t.Errorf("failed decode left state behind")
			}
		})
	}
	// a later good decode reuses the Packet
	var p dhcp.Packet
	_ = p.Decode(withHLen(17))
	if err := p.Decode(good); err != nil {
		t.Fatal(err)
	}
	if mt, ok := p.MessageType(); !ok || mt != dhcp.Discover {
		t.Errorf("after an error, MessageType = %v %v", mt, ok)
	}
}

// longSplit returns a message with n 255-byte instances of option 224.
func longSplit(n int) []byte {
	var opts []byte
	for i := 0; i < n; i++ {
		opts = append(opts, 224, 255)
		opts = append(opts, bytes.Repeat([]byte{byte(i)}, 255)...)
	}
	return rawMessage(nil, nil, append(opts, 255)...)
}

func TestDecodeLenientEnd(t *testing.T) {
	// no End, trailing pad; bytes after End ignored
	tests := []struct {
		name string
		msg  []byte
		end  bool
	}{
		{"no end", rawMessage(nil, nil, 53, 1, 3, 0, 0), false},
		{"garbage after end", rawMessage(nil, nil, 53, 1, 3, 255, 60, 200, 1), true},
		{"pads between", rawMessage(nil, nil, 0, 0, 53, 1, 3, 0, 255), true},
	}
	for _, tc := range tests {
		var p dhcp.Packet
		if err := p.Decode(tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mt, _ := p.MessageType()
		if mt != dhcp.Request || p.NumOptions() != 1 || p.HasEnd() != tc.end || p.Has(60) {
			t.Errorf("%s: type %v options %d end %v", tc.name, mt, p.NumOptions(), p.HasEnd())
		}
	}
}

func TestDecodeOverloadAndLongOptions(t *testing.T) {
	// options field: 53, 52=3 (both), first part of 43, 97 split in two;
	// file: second part of 43 and 67; sname: third part of 43 and 66.
	file := []byte{43, 3, 10, 2, 0, 67, 5, 'b', 'o', 'o', 't', 0, 255}
	sname := []byte{43, 1, 'P', 66, 4, 't', 'f', 't', 'p', 255}
	uuid := []byte{0, 0x00, 0x00, 0x18, 0xa0, 0xc6, 0, 0, 0, 0x40, 0x80, 0, 0, 0, 0, 0, 0, 0x11}
	msg := rawMessage(sname, file,
		53, 1, 1,
		52, 1, 3,
		43, 3, 6, 1, 3,
		97, 5, uuid[1], uuid[2], uuid[3], uuid[4], uuid[5],
		97, 12, uuid[6], uuid[7], uuid[8], uuid[9], uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15], uuid[16], uuid[17],
		255)
	// uuid[1] is the type byte (0), uuid[2:18] the 16 UUID bytes as OVMF sends them
	var p dhcp.Packet
	if err := p.Decode(msg); err != nil {
		t.Fatal(err)
	}
	if p.Overload() != dhcp.OverloadBoth || p.ServerName() != nil || p.BootFile() != nil {
		t.Fatalf("overload %d sname %q file %q", p.Overload(), p.ServerName(), p.BootFile())
	}
	type inst struct {
		code uint8
		area dhcp.Area
		n    int
	}
	want := []inst{{53, dhcp.AreaOptions, 1}, {52, dhcp.AreaOptions, 1}, {43, dhcp.AreaOptions, 3}, {97, dhcp.AreaOptions, 5},
		{97, dhcp.AreaOptions, 12}, {43, dhcp.AreaFile, 3}, {67, dhcp.AreaFile, 5}, {43, dhcp.AreaSName, 1}, {66, dhcp.AreaSName, 4}}
	var got []inst
	for it := p.Options(); it.Next(); {
		got = append(got, inst{it.Code(), it.Area(), len(it.Data())})
	}
	if len(got) != len(want) {
		t.Fatalf("instances %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("instance %d = %v, want %v", i, got[i], want[i])
		}
	}
	v, ok := p.PXEOptions()
	if !ok || !bytes.Equal(v, []byte{6, 1, 3, 10, 2, 0, 'P'}) || p.Instances(43) != 3 {
		t.Errorf("joined 43 = %x (%d instances)", []byte(v), p.Instances(43))
	}
	if d, ok := v.DiscoveryControl(); !ok || d != 3 {
		t.Errorf("discovery control %d %v", d, ok)
	}
	if to, pr, ok := v.MenuPrompt(); !ok || to != 0 || string(pr) != "P" {
		t.Errorf("prompt joined across file and sname: %d %q %v", to, pr, ok)
	}
	id, ok := p.ClientMachineID()
	if !ok || id.String() != "c6a01800-0000-4000-8000-000000000011" || p.Instances(97) != 2 {
		t.Errorf("joined 97: %v %v", id, ok)
	}
	if s, _ := p.BootFileName(); string(s) != "boot\x00" {
		t.Errorf("67 from file: %q", s)
	}
	if s, _ := p.TFTPServerName(); string(s) != "tftp" {
		t.Errorf("66 from sname: %q", s)
	}
	if p.NumOptions() != 6 {
		t.Errorf("NumOptions = %d, want 6 distinct codes", p.NumOptions())
	}
	// round trip keeps the overloaded fields and the split
	var q dhcp.Packet
	enc := p.AppendEncode(nil)
	if err := q.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if !p.Equal(&q) {
		t.Error("decode(encode(x)) != x for an overloaded message")
	}
}

func TestAccessorsSynthetic(t *testing.T) {
	// options the firmware captures do not carry: 12, 82, 77 in RFC 3004 form,
	// 60 HTTPClient, 93 with two entries, unusable UUIDs.
	msg := rawMessage(nil, nil,
		12, 5, 'p', 'c', '-', '4', '2',
		82, 12, 1, 4, 'e', 't', 'h', '0', 2, 4, 0xde, 0xad, 0xbe, 0xef,
		77, 5, 4, 'i', 'P', 'X', 'E',
		60, 33, 'H', 'T', 'T', 'P', 'C', 'l', 'i', 'e', 'n', 't', ':', 'A', 'r', 'c', 'h', ':', '0', '0', '0', '1', '6', ':', 'U', 'N', 'D', 'I', ':', '0', '0', '3', '0', '0', '1',
		93, 4, 0, 16, 0, 7,
		97, 17, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		255)
	var p dhcp.Packet
	if err := p.Decode(msg); err != nil {
		t.Fatal(err)
	}
	if h, ok := p.HostName(); !ok || string(h) != "pc-42" {
		t.Errorf("HostName %q", h)
	}
	r, ok := p.RelayAgentInfo()
	c, okc := r.CircuitID()
	rid, okr := r.RemoteID()
	if !ok || !okc || !okr || string(c) != "eth0" || !bytes.Equal(rid, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Errorf("relay agent: circuit %q remote %x", c, rid)
	}
	if !p.IsIPXE() {
		t.Error("RFC 3004 user class iPXE not detected")
	}
	vc, _ := p.VendorClass()
	if vc.Kind != dhcp.VendorHTTP || !vc.HasArch || vc.Arch != dhcp.ArchEFIX64HTTP || vc.UNDIMajor != 3 || vc.UNDIMinor != 1 {
		t.Errorf("HTTPClient vendor class %+v", vc)
	}
	l, _ := p.ClientArchs()
	if l.Len() != 2 || l.At(0) != dhcp.ArchEFIX64HTTP || l.At(1) != dhcp.ArchEFIX64 {
		t.Errorf("archs %x", []byte(l))
	}
	id, ok := p.ClientMachineID()
	if !ok || id.Usable() || id.String() != "ffffffff-ffff-ffff-ffff-ffffffffffff" {
		t.Errorf("all-FF UUID: ok=%v usable=%v %s", ok, id.Usable(), id)
	}
	var zero dhcp.MachineID
	if zero.Usable() {
		t.Error("all-zero UUID usable")
	}
	// malformed sub-options and vendor classes
	if (dhcp.SubOptions{1, 5, 0}).Valid() || !(dhcp.SubOptions{0, 1, 1, 9, 255, 7}).Valid() {
		t.Error("SubOptions.Valid")
	}
	for _, s := range []string{"PXEClient", "PXEClient:Arch:0000x:UNDI:003000", "PXEClient:Arch:00007", "PXEClient:Arch:99999:UNDI:003000", "MSFT 5.0", ""} {
		vc := dhcp.ParseVendorClass([]byte(s))
		wantKind := dhcp.VendorPXE
		if !strings.HasPrefix(s, "PXEClient") {
			wantKind = dhcp.VendorOther
		}
		wantArch := s == "PXEClient:Arch:00007"
		if vc.Kind != wantKind || vc.HasArch != wantArch || vc.HasUNDI || (wantArch && vc.Arch != 7) {
			t.Errorf("ParseVendorClass(%q) = %+v", s, vc)
		}
	}
	bad := rawMessage(nil, nil, 97, 3, 1, 2, 3, 93, 3, 0, 7, 0, 53, 2, 1, 1, 57, 1, 5, 94, 2, 1, 2, 54, 3, 1, 2, 3, 255)
	if err := p.Decode(bad); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.ClientMachineID(); ok {
		t.Error("97 of type 1 / wrong length accepted")
	}
	if _, ok := p.ClientArch(); ok {
		t.Error("93 of odd length accepted")
	}
	if _, ok := p.MessageType(); ok {
		t.Error("53 of 2 bytes accepted")
	}
	if _, ok := p.MaxMessageSize(); ok || p.MaxReplySize() != 548 {
		t.Error("57 of 1 byte accepted")
	}
	if _, ok := p.NII(); ok {
		t.Error("94 of 2 bytes accepted")
	}
	if _, ok := p.ServerID(); ok {
		t.Error("54 of 3 bytes accepted")
	}
}
