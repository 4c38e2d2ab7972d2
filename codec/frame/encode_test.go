package frame_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/internal/tsharkcheck"
)

// replyHeader is what the engine fills in to answer a PXE client that has
// no IP address yet: straight to its MAC, broadcast IP.
func replyHeader(tagged bool) frame.Header {
	return frame.Header{
		Eth: frame.Ethernet{Dst: frame.MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}, Src: frame.MAC{2, 0, 0, 0, 0, 1},
			Tagged: tagged, VLAN: frame.VLANTag{Priority: 3, ID: 100}},
		IP:  frame.IPv4{TTL: 64, Flags: frame.FlagDontFragment, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{255, 255, 255, 255}},
		UDP: frame.UDP{SrcPort: 67, DstPort: 68},
	}
}

func TestPutHeadersInPlace(t *testing.T) {
	for _, tagged := range []bool{false, true} {
		h := replyHeader(tagged)
		buf := make([]byte, 1514)
		off := frame.HeaderLen
		if tagged {
			off = frame.HeaderLenVLAN
		}
		if h.Len() != off {
			t.Fatalf("Len() = %d, want %d", h.Len(), off)
		}
		n := copy(buf[off:], dhcpSized)
		frameLen, err := frame.PutHeaders(buf, &h, n)
		if err != nil || frameLen != off+n {
			t.Fatalf("PutHeaders = %d, %v; want %d", frameLen, err, off+n)
		}
		var f frame.Frame
		if err := frame.DecodeUDP4(buf[:frameLen], &f); err != nil {
			t.Fatal(err)
		}
		if f.Eth.Dst != h.Eth.Dst || f.Eth.Src != h.Eth.Src || f.Eth.Tagged != tagged || (tagged && f.Eth.VLAN != h.Eth.VLAN) ||
			f.IP.Src != h.IP.Src || f.IP.Dst != h.IP.Dst || f.IP.TTL != 64 || !f.IP.DontFragment() ||
			f.UDP.SrcPort != 67 || f.UDP.DstPort != 68 || int(f.UDP.Length) != 8+n || int(f.IP.TotalLen) != 28+n ||
			!bytes.Equal(f.Payload, dhcpSized) || !f.UDPChecksumValid() || len(f.Padding) != 0 {
			t.Errorf("tagged=%v: decoded %+v", tagged, f.Header)
		}
		for _, d := range compareWithGopacket(&f, nil, gopacketReference(t, buf[:frameLen])) {
			t.Errorf("tagged=%v: %s", tagged, d)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	h := replyHeader(false)
	if _, err := frame.PutHeaders(make([]byte, frame.HeaderLen+9), &h, 10); !errors.Is(err, frame.ErrBufferTooSmall) {
		t.Errorf("short buffer: %v", err)
	}
	if _, err := frame.PutHeaders(make([]byte, 70000), &h, frame.MaxPayloadLen+1); !errors.Is(err, frame.ErrPayloadTooLarge) {
		t.Errorf("oversized payload: %v", err)
	}
	if n, err := frame.PutHeaders(make([]byte, 70000), &h, frame.MaxPayloadLen); err != nil || n != frame.HeaderLen+frame.MaxPayloadLen {
		t.Errorf("largest payload: %d, %v", n, err)
	}
	if _, err := frame.PutHeaders(make([]byte, 100), &h, -1); !errors.Is(err, frame.ErrPayloadTooLarge) {
		t.Errorf("negative payload length: %v", err)
	}
	for _, opts := range [][]byte{{1}, {1, 1, 1}, make([]byte, 44)} {
		h := replyHeader(false)
		h.IP.Options = opts
		if _, err := frame.PutHeaders(make([]byte, 200), &h, 10); !errors.Is(err, frame.ErrIPOptions) {
			t.Errorf("%d bytes of options: %v", len(opts), err)
		}
	}
	h.Mode = frame.Verbatim + 1
	if _, err := frame.PutHeaders(make([]byte, 200), &h, 10); !errors.Is(err, frame.ErrMode) {
		t.Errorf("unknown mode: %v", err)
	}
	h.Mode = frame.Compute
	dst := []byte("keep")
	if out, err := frame.Append(dst, &h, make([]byte, 70000)); err == nil || string(out) != "keep" {
		t.Errorf("Append of an oversized payload: %q, %v", out, err)
	}
}

// TestTsharkAcceptsEncodedFrames has tshark dissect, with checksum
// verification on, every kind of frame the encoder writes: the corpus
// DHCP and TFTP payloads under freshly computed headers (untagged and
// VLAN-tagged), frames with IP options, no UDP checksum, a checksum that
// computes to zero, and empty and odd payloads.
func TestTsharkAcceptsEncodedFrames(t *testing.T) {
	var frames [][]byte
	var tagged int
	add := func(h *frame.Header, payload []byte) {
		t.Helper()
		b, err := frame.Append(nil, h, payload)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
		if h.Eth.Tagged {
			tagged++
		}
	}
	for _, c := range loadCorpus(t) {
		var f frame.Frame
		for i, b := range c.frames {
			if frame.DecodeUDP4(b, &f) != nil {
				continue
			}
			f.Mode = frame.Compute
			if i%2 == 1 {
				f.Eth.Tagged = true
				f.Eth.VLAN = frame.VLANTag{Priority: uint8(i % 8), ID: uint16(i)}
			}
			add(&f.Header, f.Payload)
		}
	}
	h := replyHeader(false)
	h.IP.Options = []byte{148, 4, 0, 0} // router alert
	h.UDP = frame.UDP{SrcPort: 40000, DstPort: 40001}
	add(&h, []byte("odd"))
	h.Eth.Tagged = true
	add(&h, nil)
	h.Mode = frame.ComputeNoUDPChecksum
	add(&h, []byte("no checksum"))
	_, _, zero := zeroSumFrame(t)
	frames = append(frames, zero)

	res := tsharkcheck.CheckFrames(t, frames, tsharkcheck.Options{DHCPPorts: []uint16{4011}, VerifyChecksums: true})
	if !res.Clean() {
		t.Errorf("tshark: %v", res)
	}
	if res.Protocols["udp"] != len(frames) || res.Protocols["vlan"] != tagged || res.Protocols["dhcp"] == 0 || res.Protocols["tftp"] == 0 {
		t.Errorf("tshark protocol counts %v: want %d udp, %d vlan, some dhcp and tftp", res.Protocols, len(frames), tagged)
	}
	t.Logf("tshark: %v; protocols %v", res, res.Protocols)
}

func TestTsharkFlagsBadChecksum(t *testing.T) {
	h := replyHeader(false)
	h.UDP = frame.UDP{SrcPort: 40000, DstPort: 40001} // no dissector for the payload
	b, err := frame.Append(nil, &h, dhcpSized)
	if err != nil {
		t.Fatal(err)
	}
	h.Mode = frame.Verbatim
	h.IP.TotalLen, h.UDP.Length = uint16(28+len(dhcpSized)), uint16(8+len(dhcpSized))
	h.IP.Checksum, h.UDP.Checksum = 0xbad0, 0x1234
	bad, err := frame.Append(nil, &h, dhcpSized)
	if err != nil {
		t.Fatal(err)
	}
	res := tsharkcheck.CheckFrames(t, [][]byte{b, bad}, tsharkcheck.Options{VerifyChecksums: true})
	if res.Errors != 1 || len(res.Problems) != 1 || res.Problems[0].Frame != 2 || !strings.Contains(res.Problems[0].Messages, "Bad checksum") {
		t.Errorf("tshark on a good and a bad-checksum frame: %v", res)
	}
}

func TestMACString(t *testing.T) {
	if got := (frame.MAC{0x52, 0x54, 0, 0xab, 0xcd, 0xef}).String(); got != "52:54:00:ab:cd:ef" {
		t.Errorf("String() = %q", got)
	}
}
