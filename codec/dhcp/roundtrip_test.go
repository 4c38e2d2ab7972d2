package dhcp_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/peerboot/peerboot/codec/dhcp"
)

// TestRoundTrip checks decode(encode(x)) == x for every corpus packet and
// every builder output, and that Equal notices a changed byte.
func TestRoundTrip(t *testing.T) {
	var msgs [][]byte
	var names []string
	for _, c := range loadCorpus(t) {
		msgs, names = append(msgs, c.payload), append(names, c.name)
	}
	for _, r := range builtReplies(t) {
		msgs, names = append(msgs, r.reply), append(names, "reply to "+r.name)
	}
	msgs, names = append(msgs, longOptionReply(t)), append(names, "split option 43")
	for i, m := range msgs {
		var p, q dhcp.Packet
		if err := p.Decode(m); err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		enc := p.AppendEncode(nil)
		if err := q.Decode(enc); err != nil {
			t.Fatalf("%s: re-decode: %v", names[i], err)
		}
		if !p.Equal(&q) || !q.Equal(&p) {
			t.Errorf("%s: decode(encode(x)) != x", names[i])
		}
		// encoding is stable: encode(decode(encode(x))) == encode(x)
		if again := q.AppendEncode(nil); !bytes.Equal(again, enc) {
			t.Errorf("%s: second encoding differs", names[i])
		}
		// the re-encoding keeps the original option bytes (only pads and
		// what follows End are dropped)
		if len(enc) > len(m) {
			t.Errorf("%s: encoding grew from %d to %d bytes", names[i], len(m), len(enc))
		}
		// Equal must see a one-byte change of an option's data or header
		for _, off := range []int{4, 30, 100, 245} {
			mod := bytes.Clone(enc)
			mod[off] ^= 0x01
			var r dhcp.Packet
			if err := r.Decode(mod); err == nil && p.Equal(&r) {
				t.Errorf("%s: Equal ignores a change at offset %d", names[i], off)
			}
		}
	}
}

// TestDifferentialGopacket decodes every corpus packet and builder output
// with gopacket's layers.DHCPv4 and compares every header field and the
// option list.
func TestDifferentialGopacket(t *testing.T) {
	var msgs [][]byte
	var names []string
	for _, c := range loadCorpus(t) {
		msgs, names = append(msgs, c.payload), append(names, c.name)
	}
	for _, r := range builtReplies(t) {
		msgs, names = append(msgs, r.reply), append(names, "reply to "+r.name)
	}
	for i, m := range msgs {
		var p dhcp.Packet
		if err := p.Decode(m); err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		var g layers.DHCPv4
		if err := g.DecodeFromBytes(m, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("%s: gopacket: %v", names[i], err)
		}
		if uint8(g.Operation) != p.Op || uint8(g.HardwareType) != p.HType || g.HardwareLen != p.HLen ||
			g.HardwareOpts != p.Hops || g.Xid != p.XID || g.Secs != p.Secs || g.Flags != p.Flags {
			t.Errorf("%s: header differs: gopacket %+v", names[i], g)
		}
		for _, a := range []struct {
			g net.IP
			p [4]byte
		}{{g.ClientIP, p.CIAddr}, {g.YourClientIP, p.YIAddr}, {g.NextServerIP, p.SIAddr}, {g.RelayAgentIP, p.GIAddr}} {
			if !bytes.Equal(a.g, a.p[:]) {
				t.Errorf("%s: address %v vs %v", names[i], a.g, a.p)
			}
		}
		if !bytes.Equal(g.ClientHWAddr, p.HardwareAddr()) || !bytes.Equal(g.ServerName, p.SNameField()) || !bytes.Equal(g.File, p.FileField()) {
			t.Errorf("%s: chaddr/sname/file differ", names[i])
		}
		it := p.Options()
		n := 0
		for _, o := range g.Options {
			if o.Type == layers.DHCPOptPad {
				continue
			}
			n++
			if !it.Next() {
				t.Errorf("%s: gopacket has more options (%v)", names[i], o.Type)
				break
			}
			if uint8(o.Type) != it.Code() || int(o.Length) != len(it.Data()) || !bytes.Equal(o.Data, it.Data()) {
				t.Errorf("%s: option %d: gopacket %v/%d/%x, peerboot %d/%x", names[i], n, o.Type, o.Length, o.Data, it.Code(), it.Data())
			}
		}
		if it.Next() {
			t.Errorf("%s: peerboot has more options (%d)", names[i], it.Code())
		}
		if n == 0 {
			t.Errorf("%s: no options compared", names[i])
		}
	}
}

// TestGopacketHLenPanic records that gopacket v1.1.19 panics on hlen >= 228
// (uint8 overflow in 28+hlen) where Decode returns a DecodeError.
func TestGopacketHLenPanic(t *testing.T) {
	m := bytes.Clone(corpusFrame(t, "ovmf-uefi-x64-proxydhcp.pcap", 2))
	m[2] = 228
	var p dhcp.Packet
	if err := p.Decode(m); err == nil {
		t.Fatal("hlen 228 accepted")
	}
	panicked := func() (panicked bool) {
		defer func() { panicked = recover() != nil }()
		var g layers.DHCPv4
		_ = g.DecodeFromBytes(m, gopacket.NilDecodeFeedback)
		return false
	}()
	if !panicked {
		t.Log("gopacket no longer panics on hlen 228")
	}
}
