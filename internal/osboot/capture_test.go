package osboot_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// keptBlocks is how many DATA/ACK blocks of each TFTP transfer a trimmed
// capture keeps: enough for a corpus, not a 14 MB kernel.
const keptBlocks = 3

// trimCapture copies a pcap keeping every frame except the TFTP DATA and
// ACK packets past block keptBlocks; it returns frames read and kept.
func trimCapture(src, dst string) (read, kept int, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	r, err := pcapgo.NewReader(in)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(65536, r.LinkType()); err != nil {
		return 0, 0, err
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return read, kept, fmt.Errorf("%s: %w", src, err)
		}
		read++
		if bulkTFTP(data) {
			continue
		}
		ci.CaptureLength = len(data)
		if err := w.WritePacket(ci, data); err != nil {
			return read, kept, err
		}
		kept++
	}
	return read, kept, out.Close()
}

// bulkTFTP reports whether a frame is a TFTP DATA or ACK past the first
// blocks of a transfer (ports other than DHCP's and 69 carry transfers).
func bulkTFTP(frame []byte) bool {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok || len(udp.Payload) < 4 {
		return false
	}
	for _, p := range []layers.UDPPort{67, 68, 69, 4011} {
		if udp.SrcPort == p || udp.DstPort == p {
			return false
		}
	}
	op := binary.BigEndian.Uint16(udp.Payload)
	return (op == 3 || op == 4) && binary.BigEndian.Uint16(udp.Payload[2:]) > keptBlocks
}
