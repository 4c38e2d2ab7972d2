package frame_test

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/peerboot/peerboot/codec/frame"
)

// offerParts returns the header and 300-byte BOOTP-sized payload of a
// ProxyDHCP reply from server to client (a 342-byte frame).
func offerParts() (frame.Header, []byte) {
	payload := make([]byte, 300)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	h := frame.Header{
		Eth: frame.Ethernet{Dst: frame.MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}, Src: frame.MAC{2, 0, 0, 0, 0, 1}},
		IP:  frame.IPv4{TTL: 64, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{255, 255, 255, 255}},
		UDP: frame.UDP{SrcPort: 67, DstPort: 68},
	}
	return h, payload
}

// offerFrame returns the encoded reply frame with valid checksums and its parts.
func offerFrame(tb testing.TB) ([]byte, frame.Header, []byte) {
	tb.Helper()
	h, payload := offerParts()
	buf, err := frame.Append(nil, &h, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return buf, h, payload
}

// gopacketLayers returns gopacket's layers for the same headers.
func gopacketLayers(tb testing.TB, h frame.Header) (*layers.Ethernet, *layers.IPv4, *layers.UDP) {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(h.Eth.Src[:]), DstMAC: net.HardwareAddr(h.Eth.Dst[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: h.IP.TTL, Protocol: layers.IPProtocolUDP, SrcIP: net.IP(h.IP.Src[:]), DstIP: net.IP(h.IP.Dst[:])}
	udp := &layers.UDP{SrcPort: layers.UDPPort(h.UDP.SrcPort), DstPort: layers.UDPPort(h.UDP.DstPort)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return eth, ip, udp
}

func BenchmarkDecode(b *testing.B) {
	buf, _, _ := offerFrame(b)
	b.Run("peerboot", func(b *testing.B) {
		var f frame.Frame
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if err := frame.DecodeUDP4(buf, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peerboot+udpchecksum", func(b *testing.B) {
		var f frame.Frame
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if err := frame.DecodeUDP4(buf, &f); err != nil || !f.UDPChecksumValid() {
				b.Fatal(err)
			}
		}
	})
	b.Run("gopacket-DecodingLayerParser", func(b *testing.B) {
		var (
			eth  layers.Ethernet
			vlan layers.Dot1Q
			ip   layers.IPv4
			udp  layers.UDP
			pl   gopacket.Payload
		)
		parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &vlan, &ip, &udp, &pl)
		parser.IgnoreUnsupported = true // the DHCPv4 layer after UDP is not in the parser
		decoded := make([]gopacket.LayerType, 0, 8)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if err := parser.DecodeLayers(buf, &decoded); err != nil || len(decoded) != 3 {
				b.Fatal(err, decoded)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	_, h, payload := offerFrame(b)
	b.Run("peerboot-PutHeaders", func(b *testing.B) {
		buf := make([]byte, 1514)
		copy(buf[h.Len():], payload)
		b.SetBytes(int64(h.Len() + len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := frame.PutHeaders(buf, &h, len(payload)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peerboot-Append", func(b *testing.B) {
		buf := make([]byte, 0, 1514)
		b.SetBytes(int64(h.Len() + len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := frame.Append(buf[:0], &h, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gopacket-SerializeLayers", func(b *testing.B) {
		eth, ip, udp := gopacketLayers(b, h)
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		pl := gopacket.Payload(payload)
		b.SetBytes(int64(h.Len() + len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, pl); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBenchmarkFramesAgree makes sure both sides of each benchmark work on
// the same bytes: gopacket's encoding of the header equals peerboot's.
func TestBenchmarkFramesAgree(t *testing.T) {
	ours, h, payload := offerFrame(t)
	eth, ip, udp := gopacketLayers(t, h)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	if string(buf.Bytes()) != string(ours) {
		t.Errorf("gopacket and peerboot encode the benchmark frame differently:\n% x\n% x", buf.Bytes(), ours)
	}
}
