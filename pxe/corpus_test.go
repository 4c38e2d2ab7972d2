package pxe

import (
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// capturedPacket is one UDP datagram of a firmware capture.
type capturedPacket struct {
	src, dst netip.AddrPort
	srcMAC   [6]byte
	payload  []byte
}

// loadCapture returns every UDP datagram of a pcap in testdata.
func loadCapture(t testing.TB, name string) []capturedPacket {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []capturedPacket
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil {
			continue
		}
		var c capturedPacket
		copy(c.srcMAC[:], eth.SrcMAC)
		s, _ := netip.AddrFromSlice(ip.SrcIP.To4())
		d, _ := netip.AddrFromSlice(ip.DstIP.To4())
		c.src = netip.AddrPortFrom(s, uint16(udp.SrcPort))
		c.dst = netip.AddrPortFrom(d, uint16(udp.DstPort))
		c.payload = append([]byte(nil), udp.Payload...)
		out = append(out, c)
	}
	return out
}

// findRequest returns the n-th (0-based) client request with DHCP message
// type mt sent to port dstPort.
func findRequest(t testing.TB, pkts []capturedPacket, mt byte, dstPort uint16, n int) capturedPacket {
	t.Helper()
	for _, p := range pkts {
		if p.dst.Port() != dstPort || len(p.payload) < 243 || p.payload[0] != 1 {
			continue
		}
		if msgType(p.payload) == mt {
			if n == 0 {
				return p
			}
			n--
		}
	}
	t.Fatalf("no request of type %d to port %d", mt, dstPort)
	return capturedPacket{}
}

// msgType scans the options of a BOOTP message for option 53.
func msgType(m []byte) byte {
	for i := 240; i+1 < len(m); {
		switch m[i] {
		case 0:
			i++
			continue
		case 255:
			return 0
		}
		if m[i] == 53 && i+2 < len(m) {
			return m[i+2]
		}
		i += 2 + int(m[i+1])
	}
	return 0
}

// Names of the corpus captures (real firmware against a ProxyDHCP server).
const (
	ovmfCapture    = "ovmf-uefi-x64-proxydhcp.pcap"
	seabiosCapture = "seabios-ipxe-bios-proxydhcp.pcap"
)
