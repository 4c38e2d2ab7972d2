package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/peerboot/peerboot/codec/frame"
)

// reference is what gopacket makes of a frame.
type reference struct {
	eth  *layers.Ethernet
	vlan *layers.Dot1Q
	ip   *layers.IPv4
	udp  *layers.UDP
	// ipSum and udpSum are the checksums gopacket computes when it
	// serializes the decoded layers again (udpSum only for UDP).
	ipSum, udpSum uint16
}

func gopacketReference(tb testing.TB, b []byte) reference {
	tb.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	var r reference
	r.eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	r.vlan, _ = p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	r.ip, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	r.udp, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if r.ip == nil {
		return r
	}
	ip := *r.ip
	buf := gopacket.NewSerializeBuffer()
	if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		tb.Fatalf("gopacket re-serialize ipv4: %v", err)
	}
	r.ipSum = ip.Checksum
	if r.udp != nil && ip.Flags&layers.IPv4MoreFragments == 0 && ip.FragOffset == 0 {
		udp := *r.udp
		if err := udp.SetNetworkLayerForChecksum(&ip); err != nil {
			tb.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &udp, gopacket.Payload(udp.Payload)); err != nil {
			tb.Fatalf("gopacket re-serialize udp: %v", err)
		}
		r.udpSum = udp.Checksum
	}
	return r
}

// compareWithGopacket checks every field frame decoded against gopacket's
// layers, returning the differences.
func compareWithGopacket(f *frame.Frame, decodeErr error, r reference) []string {
	var diffs []string
	check := func(name string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s: frame %v, gopacket %v", name, got, want))
		}
	}
	if r.eth == nil {
		return []string{"gopacket found no Ethernet layer"}
	}
	check("eth dst", f.Eth.Dst[:], []byte(r.eth.DstMAC))
	check("eth src", f.Eth.Src[:], []byte(r.eth.SrcMAC))
	check("tagged", f.Eth.Tagged, r.vlan != nil)
	wantType := r.eth.EthernetType
	if r.vlan != nil {
		check("vlan priority", f.Eth.VLAN.Priority, r.vlan.Priority)
		check("vlan dei", f.Eth.VLAN.DropEligible, r.vlan.DropEligible)
		check("vlan id", f.Eth.VLAN.ID, r.vlan.VLANIdentifier)
		wantType = r.vlan.Type
	}
	check("ethertype", f.Eth.EtherType, uint16(wantType))
	if wantType != layers.EthernetTypeIPv4 {
		check("error", errors.Is(decodeErr, frame.ErrNotIPv4), true)
		return diffs
	}
	if r.ip == nil {
		return append(diffs, "gopacket decoded no IPv4 layer")
	}
	ip := r.ip
	check("ip header len", f.IP.HeaderLen(), int(ip.IHL)*4)
	check("ip tos", f.IP.TOS, ip.TOS)
	check("ip total len", f.IP.TotalLen, ip.Length)
	check("ip id", f.IP.ID, ip.Id)
	check("ip flags", f.IP.Flags, uint8(ip.Flags))
	check("ip frag offset", f.IP.FragOffset, ip.FragOffset)
	check("ip ttl", f.IP.TTL, ip.TTL)
	check("ip protocol", f.IP.Protocol, uint8(ip.Protocol))
	check("ip checksum", f.IP.Checksum, ip.Checksum)
	check("ip src", f.IP.Src[:], []byte(ip.SrcIP.To4()))
	check("ip dst", f.IP.Dst[:], []byte(ip.DstIP.To4()))
	check("ip options", f.IP.Options, ip.Contents[20:])
	check("ip checksum verifies", !errors.Is(decodeErr, frame.ErrIPChecksum), ip.Checksum == r.ipSum)
	if !errors.Is(decodeErr, frame.ErrIPChecksum) {
		check("fragment", errors.Is(decodeErr, frame.ErrFragment), ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0)
	}
	if decodeErr != nil {
		if ip.Protocol == layers.IPProtocolUDP && !errors.Is(decodeErr, frame.ErrFragment) && !errors.Is(decodeErr, frame.ErrIPChecksum) {
			diffs = append(diffs, fmt.Sprintf("UDP frame gopacket decodes failed: %v", decodeErr))
		}
		if errors.Is(decodeErr, frame.ErrFragment) {
			check("fragment data", f.Payload, ip.Payload)
		}
		return diffs
	}
	if r.udp == nil {
		return append(diffs, "decoded UDP where gopacket found none")
	}
	u := r.udp
	check("udp src port", f.UDP.SrcPort, uint16(u.SrcPort))
	check("udp dst port", f.UDP.DstPort, uint16(u.DstPort))
	check("udp length", f.UDP.Length, u.Length)
	check("udp checksum", f.UDP.Checksum, u.Checksum)
	check("udp payload", f.Payload, u.Payload)
	check("udp checksum verifies", f.UDPChecksumValid(), u.Checksum == 0 || u.Checksum == r.udpSum)
	return diffs
}

// TestCorpusMatchesGopacket decodes every frame of every firmware capture
// and compares each field with gopacket's Ethernet, Dot1Q, IPv4 and UDP
// layers, including whether the checksums verify.
func TestCorpusMatchesGopacket(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			var f frame.Frame
			var udpFrames, dhcp, tftp, badUDPSums int
			for i, b := range c.frames {
				err := frame.DecodeUDP4(b, &f)
				if err != nil {
					var fe *frame.Error
					if !errors.As(err, &fe) {
						t.Errorf("frame %d: error %v is not a *frame.Error", i+1, err)
					}
				} else {
					udpFrames++
					if f.UDP.DstPort == 67 || f.UDP.DstPort == 68 || f.UDP.DstPort == 4011 {
						dhcp++
					}
					if f.UDP.DstPort == 69 {
						tftp++
					}
					if !f.UDPChecksumValid() {
						badUDPSums++
					}
				}
				for _, d := range compareWithGopacket(&f, err, gopacketReference(t, b)) {
					t.Errorf("frame %d: %s", i+1, d)
				}
			}
			t.Logf("%d frames, %d IPv4/UDP (%d to DHCP ports, %d TFTP requests, %d with offload-unfinished UDP checksums)",
				len(c.frames), udpFrames, dhcp, tftp, badUDPSums)
			if dhcp == 0 || tftp == 0 {
				t.Errorf("decoded %d DHCP and %d TFTP request frames; a PXE boot has both", dhcp, tftp)
			}
		})
	}
}

// TestCorpusRoundTrip re-encodes every IPv4/UDP frame of the captures:
// Verbatim reproduces the bytes exactly; Compute reproduces them exactly
// when the captured checksums were right, and otherwise differs only in
// the UDP checksum, which then verifies.
func TestCorpusRoundTrip(t *testing.T) {
	buf := make([]byte, 0, 2048)
	for _, c := range loadCorpus(t) {
		var f frame.Frame
		var n int
		for i, b := range c.frames {
			if frame.DecodeUDP4(b, &f) != nil {
				continue
			}
			n++
			f.Mode = frame.Verbatim
			out, err := frame.AppendFrame(buf[:0], &f)
			if err != nil || !bytes.Equal(out, b) {
				t.Errorf("%s frame %d: verbatim re-encode differs (err %v)\n got % x\nwant % x", c.name, i+1, err, out, b)
			}
			f.Mode = frame.Compute
			valid := f.UDPChecksumValid()
			out, err = frame.AppendFrame(buf[:0], &f)
			if err != nil {
				t.Fatalf("%s frame %d: %v", c.name, i+1, err)
			}
			sumAt := f.Header.Len() - 2
			if valid {
				if !bytes.Equal(out, b) {
					t.Errorf("%s frame %d: computed re-encode differs from a frame with valid checksums", c.name, i+1)
				}
				continue
			}
			if !bytes.Equal(out[:sumAt], b[:sumAt]) || !bytes.Equal(out[sumAt+2:], b[sumAt+2:]) {
				t.Errorf("%s frame %d: computed re-encode differs outside the UDP checksum", c.name, i+1)
			}
			var g frame.Frame
			if err := frame.DecodeUDP4(out, &g); err != nil || !g.UDPChecksumValid() {
				t.Errorf("%s frame %d: recomputed UDP checksum does not verify (err %v)", c.name, i+1, err)
			}
		}
		if n == 0 {
			t.Errorf("%s: no IPv4/UDP frames", c.name)
		}
	}
}
