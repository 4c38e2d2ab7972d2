package osboot_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// keptBlocks is how many DATA/ACK blocks of each TFTP transfer a trimmed
// capture keeps: enough for a corpus, not a 14 MB kernel.
const keptBlocks = 3

// trimCapture copies a pcap keeping every frame except the TFTP DATA and
// ACK packets past block keptBlocks and TCP (image downloads from
// Central); it returns frames read and kept.
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
		if bulk(data) {
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

// bulk reports whether a frame is TCP or a TFTP DATA or ACK past the
// first blocks of a transfer (ports other than DHCP's and 69 carry
// transfers).
// The headers are read by offset, not through their length fields: a
// capture on the bridge holds GSO super-frames whose IP and UDP lengths do
// not match the frame.
func bulk(frame []byte) bool {
	const eth = 14
	if len(frame) < eth+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return false
	}
	switch frame[eth+9] {
	case 6:
		return true
	case 17:
	default:
		return false
	}
	udp := eth + int(frame[eth]&0x0f)*4
	if len(frame) < udp+12 {
		return false
	}
	src, dst := binary.BigEndian.Uint16(frame[udp:]), binary.BigEndian.Uint16(frame[udp+2:])
	for _, p := range []uint16{67, 68, 69, 4011} {
		if src == p || dst == p {
			return false
		}
	}
	op := binary.BigEndian.Uint16(frame[udp+8:])
	return (op == 3 || op == 4) && binary.BigEndian.Uint16(frame[udp+10:]) > keptBlocks
}

// TestTrimCaptureDropsBulk checks which frames a trimmed capture keeps:
// an already trimmed real capture loses nothing; DHCP, TFTP requests and
// first blocks stay; later DATA/ACK blocks and TCP go.
func TestTrimCaptureDropsBulk(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "trimmed.pcap")
	read, kept, err := trimCapture("testdata/peerboot-standalone-linux-boots.pcap", dst)
	if err != nil {
		t.Fatal(err)
	}
	if read == 0 || kept != read {
		t.Fatalf("an already trimmed capture lost frames: kept %d of %d", kept, read)
	}
	for _, c := range []struct {
		name  string
		frame []byte
		bulk  bool
	}{
		{"DATA block 4", udpFrame(50000, 1500, 3, 4), true},
		{"ACK block 9000", udpFrame(1500, 50000, 4, 9000), true},
		{"DATA block 1", udpFrame(50000, 1500, 3, 1), false},
		{"RRQ", udpFrame(1500, 69, 1, 0), false},
		{"DHCP", udpFrame(68, 67, 3, 100), false},
		{"short", []byte{1, 2, 3}, false},
		{"TCP", func() []byte { f := udpFrame(8080, 40000, 0, 0); f[14+9] = 6; return f }(), true},
	} {
		if got := bulk(c.frame); got != c.bulk {
			t.Errorf("%s: bulk %v, want %v", c.name, got, c.bulk)
		}
	}
}

// udpFrame is an Ethernet/IPv4/UDP frame whose payload starts with a TFTP
// opcode and block number.
func udpFrame(src, dst, op, block uint16) []byte {
	f := make([]byte, 14+20+8+4)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14] = 0x45
	f[14+9] = 17
	binary.BigEndian.PutUint16(f[34:], src)
	binary.BigEndian.PutUint16(f[36:], dst)
	binary.BigEndian.PutUint16(f[42:], op)
	binary.BigEndian.PutUint16(f[44:], block)
	return f
}
