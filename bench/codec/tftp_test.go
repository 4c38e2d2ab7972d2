package codec

import (
	"testing"

	tftpcodec "github.com/peerboot/peerboot/codec/tftp"
)

// The RRQ that OVMF (edk2 PXE) sends first: tsize probe with blksize and
// windowsize, byte for byte as captured.
var ovmfRRQ = []byte("\x00\x01lab-efi64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00")

var tftpAck = []byte{0, 4, 0x12, 0x34}

// github.com/pin/tftp/v3 has no exported packet parser or builder (its
// packet code is internal to its client/server), so there is no library peer
// to run side by side here; the TFTP server benchmarks in bench/tftp compare
// whole servers instead.

func BenchmarkTFTPDecodeRRQ(b *testing.B) {
	var r tftpcodec.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(ovmfRRQ)))
	for b.Loop() {
		if err := tftpcodec.ParseRequest(ovmfRRQ, &r); err != nil {
			b.Fatal(err)
		}
	}
	if r.Blksize != 1468 || r.Windowsize != 4 {
		b.Fatalf("decoded %+v", r)
	}
}

func BenchmarkTFTPDecodeAck(b *testing.B) {
	var blk uint16
	b.ReportAllocs()
	for b.Loop() {
		var err error
		blk, err = tftpcodec.ParseAck(tftpAck)
		if err != nil {
			b.Fatal(err)
		}
	}
	if blk != 0x1234 {
		b.Fatalf("block %#x", blk)
	}
}

func BenchmarkTFTPBuildData(b *testing.B) {
	payload := make([]byte, 1468)
	buf := make([]byte, 0, 4+len(payload))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var out []byte
	for i := 0; b.Loop(); i++ {
		out = tftpcodec.AppendData(buf[:0], uint16(i), payload)
	}
	if len(out) != 1472 {
		b.Fatalf("built %d bytes", len(out))
	}
}

// BenchmarkTFTPBuildDataHeader is what the server does per packet: file
// data is read in place, only the 4-byte header is written.
func BenchmarkTFTPBuildDataHeader(b *testing.B) {
	buf := make([]byte, 1472)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tftpcodec.PutDataHeader(buf, uint16(i))
	}
	if buf[1] != 3 {
		b.Fatal("no DATA opcode")
	}
}
