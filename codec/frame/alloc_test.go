package frame_test

import (
	"testing"

	"github.com/peerboot/peerboot/codec/frame"
)

// TestZeroAllocations guards every decode and encode path, failures
// included, against heap allocation.
func TestZeroAllocations(t *testing.T) {
	good := validFrame(t, true, []byte{148, 4, 0, 0})
	bad := validFrame(t, false, nil)
	bad[24] ^= 0xff // IPv4 checksum
	arp := validFrame(t, false, nil)
	arp[13] = 0x06
	var f frame.Frame
	h := replyHeader(true)
	buf := make([]byte, 0, 1514)
	paths := []struct {
		name string
		fn   func()
	}{
		{"decode", func() {
			if frame.DecodeUDP4(good, &f) != nil {
				t.Fatal("decode failed")
			}
		}},
		{"decode bad checksum", func() {
			if frame.DecodeUDP4(bad, &f) == nil {
				t.Fatal("bad checksum decoded")
			}
		}},
		{"decode not ipv4", func() {
			if frame.DecodeUDP4(arp, &f) == nil {
				t.Fatal("arp decoded")
			}
		}},
		{"decode truncated", func() {
			if frame.DecodeUDP4(good[:30], &f) == nil {
				t.Fatal("truncated frame decoded")
			}
		}},
		{"udp checksum", func() {
			_ = frame.DecodeUDP4(good, &f)
			if !f.UDPChecksumValid() {
				t.Fatal("checksum invalid")
			}
		}},
		{"put headers", func() {
			b := buf[:cap(buf)]
			copy(b[h.Len():], dhcpSized)
			if _, err := frame.PutHeaders(b, &h, len(dhcpSized)); err != nil {
				t.Fatal(err)
			}
		}},
		{"append", func() {
			if _, err := frame.Append(buf[:0], &h, dhcpSized); err != nil {
				t.Fatal(err)
			}
		}},
		{"append frame", func() {
			_ = frame.DecodeUDP4(good, &f)
			if _, err := frame.AppendFrame(buf[:0], &f); err != nil {
				t.Fatal(err)
			}
		}},
		{"encode error", func() {
			if _, err := frame.PutHeaders(buf[:10], &h, 100); err == nil {
				t.Fatal("short buffer accepted")
			}
		}},
	}
	for _, p := range paths {
		if n := testing.AllocsPerRun(200, p.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", p.name, n)
		}
	}
}
