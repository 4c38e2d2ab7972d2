package frame_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/internal/tsharkcheck"
)

// addSeeds adds every frame of testdata/seeds.pcap, and for each IPv4/UDP
// one a VLAN-tagged copy, a copy with IPv4 options and a fragment.
func addSeeds(f *testing.F) {
	frames, err := tsharkcheck.ReadPCAP("testdata/seeds.pcap")
	if err != nil {
		f.Fatal(err)
	}
	if len(frames) < 20 {
		f.Fatalf("%d seed frames, want at least 20", len(frames))
	}
	var fr frame.Frame
	for _, b := range frames {
		f.Add(b)
		if frame.DecodeUDP4(b, &fr) != nil {
			continue
		}
		fr.Eth.Tagged, fr.Eth.VLAN = true, frame.VLANTag{Priority: 5, ID: 42}
		addEncoded(f, &fr)
		fr.Eth.Tagged = false
		fr.IP.Options = []byte{148, 4, 0, 0}
		addEncoded(f, &fr)
		fr.IP.Options = nil
		fr.IP.Flags = frame.FlagMoreFragments
		addEncoded(f, &fr)
	}
}

func addEncoded(f *testing.F, fr *frame.Frame) {
	b, err := frame.AppendFrame(nil, fr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr frame.Frame
		err := frame.DecodeUDP4(data, &fr)
		if err != nil {
			var fe *frame.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *frame.Error", err, err)
			}
			if fe.Reason < frame.ErrTruncated || fe.Reason > frame.ErrUDPLength || fe.Layer < frame.LayerEthernet ||
				fe.Layer > frame.LayerUDP || fe.Offset < 0 || fe.Offset > len(data) || !errors.Is(err, fe.Reason) {
				t.Fatalf("error out of range: %+v", *fe)
			}
			return
		}
		if got := fr.Header.Len() + len(fr.Payload) + len(fr.Padding); got != len(data) {
			t.Fatalf("header %d + payload %d + padding %d != %d bytes", fr.Header.Len(), len(fr.Payload), len(fr.Padding), len(data))
		}
		if int(fr.UDP.Length) != len(fr.Payload)+frame.UDPHeaderLen || fr.IP.IsFragment() || fr.IP.Protocol != frame.ProtocolUDP {
			t.Fatalf("inconsistent decode: %+v", fr.Header)
		}
		compareGopacket(t, data, &fr)
	})
}

// compareGopacket checks an accepted frame against gopacket's layers.
func compareGopacket(t *testing.T, data []byte, fr *frame.Frame) {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil || !bytes.Equal(eth.DstMAC, fr.Eth.Dst[:]) || !bytes.Equal(eth.SrcMAC, fr.Eth.Src[:]) {
		t.Fatalf("gopacket Ethernet %v disagrees with %+v", eth, fr.Eth)
	}
	vlan, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	if (vlan != nil) != fr.Eth.Tagged || vlan != nil && (vlan.VLANIdentifier != fr.Eth.VLAN.ID || vlan.Priority != fr.Eth.VLAN.Priority) {
		t.Fatalf("gopacket Dot1Q %v disagrees with %+v", vlan, fr.Eth)
	}
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		return // gopacket rejects IPv4 options it cannot parse; the options are opaque here
	}
	if ip.Length != fr.IP.TotalLen || ip.TTL != fr.IP.TTL || ip.Id != fr.IP.ID || !bytes.Equal(ip.SrcIP.To4(), fr.IP.Src[:]) ||
		!bytes.Equal(ip.DstIP.To4(), fr.IP.Dst[:]) || !bytes.Equal(ip.Contents[20:], fr.IP.Options) {
		t.Fatalf("gopacket IPv4 disagrees with %+v", fr.IP)
	}
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil && p.ErrorLayer() != nil {
		return // gopacket stopped at IPv4 options it finds malformed (e.g. an option length below 2)
	}
	if udp == nil || uint16(udp.SrcPort) != fr.UDP.SrcPort || uint16(udp.DstPort) != fr.UDP.DstPort ||
		udp.Checksum != fr.UDP.Checksum || !bytes.Equal(udp.Payload, fr.Payload) {
		t.Fatalf("gopacket UDP %v disagrees with %+v", udp, fr.UDP)
	}
}

func FuzzDecodeEncode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr frame.Frame
		if frame.DecodeUDP4(data, &fr) != nil {
			return
		}
		fr.Mode = frame.Verbatim
		out, err := frame.AppendFrame(nil, &fr)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("verbatim re-encode differs (err %v)\n got % x\nwant % x", err, out, data)
		}

		fr.Mode = frame.Compute
		out, err = frame.Append(nil, &fr.Header, fr.Payload)
		if err != nil {
			t.Fatalf("re-encode with computed checksums: %v", err)
		}
		var again frame.Frame
		if err := frame.DecodeUDP4(out, &again); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !again.UDPChecksumValid() || !bytes.Equal(again.Payload, fr.Payload) || len(again.Padding) != 0 ||
			again.Eth != fr.Eth || again.UDP.SrcPort != fr.UDP.SrcPort || again.UDP.DstPort != fr.UDP.DstPort ||
			again.IP.Src != fr.IP.Src || again.IP.Dst != fr.IP.Dst || !bytes.Equal(again.IP.Options, fr.IP.Options) {
			t.Fatalf("re-encoded frame decodes differently:\n%+v\n%+v", again.Header, fr.Header)
		}
	})
}
