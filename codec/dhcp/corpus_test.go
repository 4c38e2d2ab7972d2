package dhcp_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// corpusPacket is one DHCP/BOOTP payload from a firmware capture.
type corpusPacket struct {
	name    string // file#frame
	file    string
	frame   int
	srcPort uint16
	dstPort uint16
	payload []byte
}

func isDHCPPort(p layers.UDPPort) bool { return p == 67 || p == 68 || p == 4011 }

// loadCorpus returns every UDP payload to or from ports 67, 68 and 4011 in
// testdata/*.pcap, in file then frame order.
func loadCorpus(t testing.TB) []corpusPacket {
	t.Helper()
	files, err := filepath.Glob("testdata/*.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata: %v", err)
	}
	sort.Strings(files)
	var out []corpusPacket
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(f)
		if err != nil {
			f.Close()
			t.Fatalf("%s: %v", path, err)
		}
		frame := 0
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			frame++
			pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok || !(isDHCPPort(udp.SrcPort) || isDHCPPort(udp.DstPort)) {
				continue
			}
			name := filepath.Base(path)
			out = append(out, corpusPacket{
				name: name + "#" + itoa(frame), file: name, frame: frame,
				srcPort: uint16(udp.SrcPort), dstPort: uint16(udp.DstPort),
				payload: append([]byte(nil), udp.Payload...),
			})
		}
		f.Close()
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// corpusFrame returns the payload of one frame of one capture.
func corpusFrame(t testing.TB, file string, frame int) []byte {
	t.Helper()
	for _, c := range loadCorpus(t) {
		if c.file == file && c.frame == frame {
			return c.payload
		}
	}
	t.Fatalf("%s#%d: no DHCP payload", file, frame)
	return nil
}
