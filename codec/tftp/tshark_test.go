package tftp

import (
	"testing"

	"github.com/peerboot/peerboot/internal/tsharkcheck"
)

// TestTsharkDissectsBuilderOutput writes every builder output into a pcap
// as one TFTP conversation (requests to port 69, the rest between the
// transfer ports) and has tshark check that no packet is malformed.
func TestTsharkDissectsBuilderOutput(t *testing.T) {
	client := tsharkcheck.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: [4]byte{198, 18, 0, 100}, Port: 2000}
	server := tsharkcheck.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 2}, IP: [4]byte{198, 18, 0, 1}, Port: 69}
	serverTID := server
	serverTID.Port = 3000
	var frames [][]byte
	for _, p := range builderOutputs(t) {
		op, err := PacketOpcode(p)
		if err != nil {
			t.Fatal(err)
		}
		src, dst := client, serverTID
		switch op {
		case OpRRQ, OpWRQ:
			dst = server
		case OpOACK, OpDATA, OpERROR:
			src, dst = serverTID, client
		}
		f, err := tsharkcheck.UDPFrame(src, dst, p)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	res := tsharkcheck.CheckFrames(t, frames, tsharkcheck.Options{VerifyChecksums: true})
	if res.Malformed != 0 || res.Errors != 0 {
		t.Fatalf("tshark: %v", res)
	}
	if res.Protocols["tftp"] != len(frames) {
		t.Fatalf("tshark dissected %d of %d frames as TFTP: %v", res.Protocols["tftp"], len(frames), res)
	}
	// tshark flags every ERROR packet with the expert warning "TFTP ERROR
	// packet"; that is the only warning allowed.
	errorPackets := int(ErrCodeOptionNegotiation) + 1
	for _, p := range res.Problems {
		if p.Malformed || p.Messages != "TFTP ERROR packet" {
			t.Errorf("unexpected tshark finding: %v", p)
		}
	}
	if res.Warnings != errorPackets {
		t.Fatalf("tshark: %d warnings, want exactly one per ERROR packet (%d): %v", res.Warnings, errorPackets, res)
	}
}
