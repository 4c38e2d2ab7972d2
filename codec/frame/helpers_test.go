package frame_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/peerboot/peerboot/internal/tsharkcheck"
)

// capture is one firmware PXE boot recorded on a bridge.
type capture struct {
	name   string
	frames [][]byte
}

// loadCorpus reads every capture in testdata; there must be at least four.
func loadCorpus(tb testing.TB) []capture {
	tb.Helper()
	paths, err := filepath.Glob("testdata/*.pcap")
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) < 4 {
		tb.Fatalf("found %d captures in testdata, want the 4 firmware boots", len(paths))
	}
	var caps []capture
	for _, p := range paths {
		frames, err := tsharkcheck.ReadPCAP(p)
		if err != nil {
			tb.Fatal(err)
		}
		if len(frames) == 0 {
			tb.Fatalf("%s: no frames", p)
		}
		caps = append(caps, capture{name: filepath.Base(p), frames: frames})
	}
	return caps
}

// gpFrame describes a frame for gopacket to serialize as a reference.
type gpFrame struct {
	vlan      *layers.Dot1Q
	ipFlags   layers.IPv4Flag
	fragOff   uint16
	options   []layers.IPv4Option
	srcPort   uint16
	dstPort   uint16
	payload   []byte
	noUDP     bool // fragment with no UDP header: payload is the IPv4 payload
	udpLength uint16
}

// serialize builds the frame with gopacket, computing lengths and
// checksums.
func (g gpFrame) serialize(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version: 4, TOS: 0x10, Id: 0x1234, Flags: g.ipFlags, FragOffset: g.fragOff, TTL: 64,
		Protocol: layers.IPProtocolUDP,
		SrcIP:    net.IP{198, 18, 0, 1}, DstIP: net.IP{198, 18, 0, 77},
		Options: g.options,
	}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	if g.vlan != nil {
		eth.EthernetType = layers.EthernetTypeDot1Q
		v := *g.vlan
		v.Type = layers.EthernetTypeIPv4
		ls = append(ls, &v)
	}
	ls = append(ls, ip)
	if !g.noUDP {
		udp := &layers.UDP{SrcPort: layers.UDPPort(g.srcPort), DstPort: layers.UDPPort(g.dstPort)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, udp)
	}
	ls = append(ls, gopacket.Payload(g.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
