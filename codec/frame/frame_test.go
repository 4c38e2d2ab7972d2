package frame_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/peerboot/peerboot/codec/frame"
)

// dhcpSized is a payload the size of a typical ProxyDHCP reply.
var dhcpSized = bytes.Repeat([]byte{0x5a, 0xa5, 0x01}, 110)

func TestDecodeGopacketBuiltFrames(t *testing.T) {
	routerAlert := []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	tests := []struct {
		name string
		g    gpFrame
		err  frame.Reason
	}{
		{"plain", gpFrame{srcPort: 67, dstPort: 68, payload: dhcpSized}, 0},
		{"vlan", gpFrame{vlan: &layers.Dot1Q{Priority: 5, DropEligible: true, VLANIdentifier: 42}, srcPort: 4011, dstPort: 4011, payload: dhcpSized}, 0},
		{"vlan 4095 prio 7", gpFrame{vlan: &layers.Dot1Q{Priority: 7, VLANIdentifier: 4095}, srcPort: 1, dstPort: 2, payload: []byte("x")}, 0},
		{"vlan 0", gpFrame{vlan: &layers.Dot1Q{}, srcPort: 69, dstPort: 2070, payload: []byte{0, 4, 0, 1}}, 0},
		{"ip options", gpFrame{options: routerAlert, srcPort: 68, dstPort: 67, payload: dhcpSized}, 0},
		{"vlan and ip options", gpFrame{vlan: &layers.Dot1Q{VLANIdentifier: 7}, options: routerAlert, srcPort: 68, dstPort: 67, payload: dhcpSized}, 0},
		{"dont fragment", gpFrame{ipFlags: layers.IPv4DontFragment, srcPort: 67, dstPort: 68, payload: dhcpSized}, 0},
		{"empty payload", gpFrame{srcPort: 9, dstPort: 9}, 0},
		{"odd payload", gpFrame{srcPort: 9, dstPort: 9, payload: []byte{1, 2, 3}}, 0},
		{"first fragment", gpFrame{ipFlags: layers.IPv4MoreFragments, srcPort: 67, dstPort: 68, payload: dhcpSized}, frame.ErrFragment},
		{"middle fragment", gpFrame{ipFlags: layers.IPv4MoreFragments, fragOff: 185, noUDP: true, payload: dhcpSized[:64]}, frame.ErrFragment},
		{"last fragment", gpFrame{fragOff: 185, noUDP: true, payload: dhcpSized[:17]}, frame.ErrFragment},
		{"vlan fragment", gpFrame{vlan: &layers.Dot1Q{VLANIdentifier: 3}, fragOff: 1, noUDP: true, payload: []byte("tail")}, frame.ErrFragment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.g.serialize(t)
			var f frame.Frame
			err := frame.DecodeUDP4(b, &f)
			if tc.err == 0 && err != nil {
				t.Fatalf("decode: %v", err)
			}
			if tc.err != 0 && !errors.Is(err, tc.err) {
				t.Fatalf("decode error %v, want %v", err, tc.err)
			}
			for _, d := range compareWithGopacket(&f, err, gopacketReference(t, b)) {
				t.Error(d)
			}
			if tc.err == frame.ErrFragment {
				if !f.IP.IsFragment() {
					t.Error("IsFragment() = false for a fragment")
				}
				var fe *frame.Error
				if !errors.As(err, &fe) || fe.Layer != frame.LayerIPv4 || fe.Offset != f.Eth.Len()+6 {
					t.Errorf("fragment error %+v, want ipv4 layer at the flags field (offset %d)", fe, f.Eth.Len()+6)
				}
				return
			}
			if f.IP.IsFragment() {
				t.Error("IsFragment() = true for a whole datagram")
			}
			if f.IP.DontFragment() != (tc.g.ipFlags == layers.IPv4DontFragment) {
				t.Error("DontFragment() wrong")
			}
			if !bytes.Equal(f.Payload, tc.g.payload) {
				t.Errorf("payload % x, want % x", f.Payload, tc.g.payload)
			}
			if !f.UDPChecksumValid() {
				t.Error("gopacket's UDP checksum does not verify")
			}
			// Our encoder reproduces gopacket's frame (Ethernet padding aside).
			out, err := frame.AppendFrame(nil, &f)
			if err != nil || !bytes.Equal(out, b) {
				t.Errorf("re-encode with computed checksums differs (err %v)\n got % x\nwant % x", err, out, b)
			}
		})
	}
}

// validFrame is an untagged DHCP-sized frame built by this package.
func validFrame(t testing.TB, tagged bool, options []byte) []byte {
	t.Helper()
	h := frame.Header{
		Eth: frame.Ethernet{Dst: frame.Broadcast, Src: frame.MAC{2, 0, 0, 0, 0, 1}, Tagged: tagged, VLAN: frame.VLANTag{ID: 10}},
		IP:  frame.IPv4{TTL: 64, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{255, 255, 255, 255}, Options: options},
		UDP: frame.UDP{SrcPort: 67, DstPort: 68},
	}
	b, err := frame.Append(nil, &h, dhcpSized)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixIPChecksum recomputes the IPv4 header checksum of an untagged frame.
func fixIPChecksum(b []byte) {
	ihl := int(b[14]&0xf) * 4
	if ihl < 20 || 14+ihl > len(b) {
		return
	}
	b[24], b[25] = 0, 0
	binary.BigEndian.PutUint16(b[24:], frame.Checksum(b[14:14+ihl]))
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		layer  frame.Layer
		offset int
		reason frame.Reason
	}{
		{"arp", func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }, frame.LayerEthernet, 12, frame.ErrNotIPv4},
		{"ipv6 in vlan", func(b []byte) []byte {
			return append(append(b[:12:12], 0x81, 0, 0, 1, 0x86, 0xdd), b[14:]...)
		}, frame.LayerEthernet, 16, frame.ErrNotIPv4},
		{"ip version 6", func(b []byte) []byte { b[14] = 0x65; fixIPChecksum(b); return b }, frame.LayerIPv4, 14, frame.ErrIPVersion},
		{"ihl 4", func(b []byte) []byte { b[14] = 0x44; return b }, frame.LayerIPv4, 14, frame.ErrIPHeaderLen},
		{"ihl past end", func(b []byte) []byte { b[14] = 0x4f; return b[:40] }, frame.LayerIPv4, 14, frame.ErrTruncated},
		{"total length below header", func(b []byte) []byte { b[16], b[17] = 0, 19; fixIPChecksum(b); return b }, frame.LayerIPv4, 16, frame.ErrIPTotalLen},
		{"total length past end", func(b []byte) []byte { b[16], b[17] = 0xff, 0; fixIPChecksum(b); return b }, frame.LayerIPv4, 16, frame.ErrTruncated},
		{"bad ip checksum", func(b []byte) []byte { b[24] ^= 1; return b }, frame.LayerIPv4, 24, frame.ErrIPChecksum},
		{"ttl changed under checksum", func(b []byte) []byte { b[22]--; return b }, frame.LayerIPv4, 24, frame.ErrIPChecksum},
		{"tcp", func(b []byte) []byte { b[23] = 6; fixIPChecksum(b); return b }, frame.LayerIPv4, 23, frame.ErrNotUDP},
		{"no room for udp header", func(b []byte) []byte { b[16], b[17] = 0, 27; fixIPChecksum(b); return b }, frame.LayerUDP, 34, frame.ErrTruncated},
		{"udp length 7", func(b []byte) []byte { b[38], b[39] = 0, 7; return b }, frame.LayerUDP, 38, frame.ErrUDPLength},
		{"udp length past ip payload", func(b []byte) []byte { b[39]++; return b }, frame.LayerUDP, 38, frame.ErrUDPLength},
		{"reserved flag with offset", func(b []byte) []byte { b[20] = 0x80; b[21] = 1; fixIPChecksum(b); return b }, frame.LayerIPv4, 20, frame.ErrFragment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(validFrame(t, false, nil))
			var f frame.Frame
			err := frame.DecodeUDP4(b, &f)
			var fe *frame.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want *frame.Error", err, err)
			}
			if fe.Layer != tc.layer || fe.Offset != tc.offset || fe.Reason != tc.reason || !errors.Is(err, tc.reason) {
				t.Errorf("got %v (%+v), want layer %v offset %d reason %v", err, *fe, tc.layer, tc.offset, tc.reason)
			}
			if err.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	var f frame.Frame
	b := make([]byte, 20)
	b[12] = 0x08 // IPv4, but only 6 bytes of its header
	err := frame.DecodeUDP4(b, &f)
	if got, want := err.Error(), "frame: ipv4 at offset 14: truncated"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got, want := frame.ErrBufferTooSmall.Error(), "frame: buffer too small"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestTruncatedAtEveryLength cuts valid frames (corpus and constructed,
// tagged, with options) at every length: a cut inside the IPv4 datagram is
// ErrTruncated, a cut in the Ethernet padding still decodes the same, and
// nothing panics.
func TestTruncatedAtEveryLength(t *testing.T) {
	frames := [][]byte{
		validFrame(t, false, nil),
		validFrame(t, true, []byte{148, 4, 0, 0, 1, 1, 1, 0}),
		gpFrame{srcPort: 1, dstPort: 2, payload: []byte("short")}.serialize(t), // padded to 60
	}
	for _, c := range loadCorpus(t) {
		frames = append(frames, c.frames...)
	}
	var whole, cut frame.Frame
	for i, b := range frames {
		if frame.DecodeUDP4(b, &whole) != nil {
			continue
		}
		end := len(b) - len(whole.Padding)
		for n := range len(b) {
			err := frame.DecodeUDP4(b[:n], &cut)
			if n < end {
				var fe *frame.Error
				if !errors.Is(err, frame.ErrTruncated) || !errors.As(err, &fe) || fe.Offset > n {
					t.Fatalf("frame %d cut to %d of %d bytes: %v, want ErrTruncated at an offset <= %d", i, n, len(b), err, n)
				}
				continue
			}
			if err != nil || !bytes.Equal(cut.Payload, whole.Payload) || cut.UDP != whole.UDP {
				t.Fatalf("frame %d cut to %d bytes (padding only): %v", i, n, err)
			}
		}
	}
}

func TestChecksumKnownValues(t *testing.T) {
	// A textbook IPv4 header whose checksum is 0xb861.
	hdr := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := frame.Checksum(hdr); got != 0xb861 {
		t.Errorf("Checksum = %#04x, want 0xb861", got)
	}
	hdr[10], hdr[11] = 0xb8, 0x61
	if got := frame.Checksum(hdr); got != 0 {
		t.Errorf("Checksum over a correct header = %#04x, want 0", got)
	}
	// RFC 1071's worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
	if got := frame.Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("RFC 1071 example: %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// An odd length is padded with a zero byte.
	if got, want := frame.Checksum([]byte{0x12, 0x34, 0x56}), frame.Checksum([]byte{0x12, 0x34, 0x56, 0}); got != want {
		t.Errorf("odd length %#04x, padded %#04x", got, want)
	}
}

func TestUDPChecksum(t *testing.T) {
	b := validFrame(t, false, nil)
	var f frame.Frame
	if err := frame.DecodeUDP4(b, &f); err != nil {
		t.Fatal(err)
	}
	if !f.UDPChecksumValid() || f.UDP.Checksum == 0 {
		t.Fatalf("fresh frame: checksum %#04x valid=%v", f.UDP.Checksum, f.UDPChecksumValid())
	}
	for _, at := range []int{26, 29, 30, 33, 34, 35, 38, 41, 42, len(b) - 1} { // addresses, ports, length, checksum, payload
		bad := bytes.Clone(b)
		bad[at] ^= 0x40
		fixIPChecksum(bad)
		if frame.DecodeUDP4(bad, &f) != nil {
			if at == 38 || at == len(b)-1 {
				continue // a changed length may no longer decode at all
			}
			t.Fatalf("byte %d flipped: does not decode", at)
		}
		if f.UDPChecksumValid() {
			t.Errorf("byte %d flipped: UDP checksum still verifies", at)
		}
	}
	none := bytes.Clone(b)
	none[40], none[41] = 0, 0
	none[45] ^= 0xff
	if err := frame.DecodeUDP4(none, &f); err != nil || !f.UDPChecksumValid() {
		t.Errorf("zero UDP checksum (none) not accepted: %v", err)
	}

	// A datagram whose checksum computes to 0 must carry 0xffff. (gopacket
	// v1.1.19 would write 0 here, against RFC 768; the tshark test checks
	// this frame instead.)
	h, payload, b := zeroSumFrame(t)
	if got := binary.BigEndian.Uint16(b[40:]); got != 0xffff {
		t.Errorf("checksum that computes to zero written as %#04x, want 0xffff", got)
	}
	if err := frame.DecodeUDP4(b, &f); err != nil || !f.UDPChecksumValid() {
		t.Errorf("0xffff checksum does not verify: %v", err)
	}

	h.Mode = frame.ComputeNoUDPChecksum
	b, err := frame.Append(b[:0], &h, payload)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(b[40:]); got != 0 {
		t.Errorf("ComputeNoUDPChecksum wrote %#04x", got)
	}
	if err := frame.DecodeUDP4(b, &f); err != nil {
		t.Errorf("IP checksum in ComputeNoUDPChecksum mode: %v", err)
	}
}

// zeroSumFrame returns a frame whose UDP checksum computes to zero, which
// must go on the wire as 0xffff, with its header and payload.
func zeroSumFrame(t testing.TB) (frame.Header, []byte, []byte) {
	t.Helper()
	h := frame.Header{IP: frame.IPv4{TTL: 1, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}}, UDP: frame.UDP{SrcPort: 1000, DstPort: 2000}}
	payload := []byte{0xde, 0xad, 0, 0}
	b, err := frame.Append(nil, &h, payload)
	if err != nil {
		t.Fatal(err)
	}
	copy(payload[2:], b[40:42]) // adding the old checksum makes the sum 0xffff
	if b, err = frame.Append(b[:0], &h, payload); err != nil {
		t.Fatal(err)
	}
	return h, payload, b
}

// referenceChecksum is RFC 1071's checksum written the plain way: 16-bit
// words, carries folded at the end.
func referenceChecksum(b []byte) uint16 {
	var acc uint32
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		for _, fill := range []string{"random", "ones", "zeros"} {
			b := make([]byte, n)
			for i := range b {
				switch fill {
				case "random":
					b[i] = byte(rng.Uint32())
				case "ones":
					b[i] = 0xff
				}
			}
			if got, want := frame.Checksum(b), referenceChecksum(b); got != want {
				t.Fatalf("%d %s bytes: Checksum %#04x, reference %#04x", n, fill, got, want)
			}
		}
	}
}

// TestPartialUDPChecksum: a frame built for checksum offload carries the
// pseudo-header sum, and finishing it as a device does (the complement of
// the sum over the UDP header and payload, field included) gives the
// checksum Compute writes.
func TestPartialUDPChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 200 {
		h := replyHeader(i%2 == 1)
		payload := make([]byte, rng.IntN(600))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		want, err := frame.Append(nil, &h, payload)
		if err != nil {
			t.Fatal(err)
		}
		h.Mode = frame.PartialUDPChecksum
		got, err := frame.Append(nil, &h, payload)
		if err != nil {
			t.Fatal(err)
		}
		udp := got[h.Len()-frame.UDPHeaderLen:]
		csum := udp[6:8]
		if binary.BigEndian.Uint16(csum) == binary.BigEndian.Uint16(want[h.Len()-2:]) {
			t.Fatalf("frame %d: the partial checksum field already holds the final checksum", i)
		}
		finished := frame.Checksum(udp)
		if finished == 0 {
			finished = 0xffff // as the kernel writes a computed 0
		}
		binary.BigEndian.PutUint16(csum, finished)
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: finished offload frame differs from the computed one\n got %x\nwant %x", i, got, want)
		}
	}
	if s := frame.PartialUDPChecksum.String(); s != "partial-udp-checksum" {
		t.Errorf("String() = %q", s)
	}
}
