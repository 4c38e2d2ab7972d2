package frame

import "encoding/binary"

// DecodeUDP4 decodes an Ethernet II frame (without FCS) carrying a UDP
// datagram over IPv4 into f, overwriting all of it. f's slices alias buf.
//
// It verifies the IPv4 header checksum but not the UDP checksum (see
// Frame.UDPChecksumValid). On failure it returns an *Error (see Error for
// its lifetime) and leaves in f the layers decoded before the fault: for
// ErrNotIPv4 the Ethernet header, for ErrIPChecksum, ErrNotUDP and
// ErrFragment also the IPv4 header, and for ErrFragment the fragment data
// in Payload. It never panics and never allocates.
func DecodeUDP4(buf []byte, f *Frame) error {
	*f = Frame{}
	if len(buf) < EthernetHeaderLen {
		return f.fail(LayerEthernet, 0, ErrTruncated)
	}
	copy(f.Eth.Dst[:], buf[0:6])
	copy(f.Eth.Src[:], buf[6:12])
	f.Eth.EtherType = binary.BigEndian.Uint16(buf[12:14])
	off := EthernetHeaderLen
	if f.Eth.EtherType == EtherTypeVLAN {
		if len(buf) < off+VLANTagLen {
			return f.fail(LayerVLAN, off, ErrTruncated)
		}
		tci := binary.BigEndian.Uint16(buf[off:])
		f.Eth.Tagged = true
		f.Eth.VLAN = VLANTag{Priority: uint8(tci >> 13), DropEligible: tci&0x1000 != 0, ID: tci & 0x0fff}
		f.Eth.EtherType = binary.BigEndian.Uint16(buf[off+2:])
		off += VLANTagLen
	}
	if f.Eth.EtherType != EtherTypeIPv4 {
		return f.fail(LayerEthernet, off-2, ErrNotIPv4)
	}

	ipOff := off
	ip := buf[ipOff:]
	if len(ip) < IPv4HeaderLen {
		return f.fail(LayerIPv4, ipOff, ErrTruncated)
	}
	if ip[0]>>4 != 4 {
		return f.fail(LayerIPv4, ipOff, ErrIPVersion)
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < IPv4HeaderLen {
		return f.fail(LayerIPv4, ipOff, ErrIPHeaderLen)
	}
	if len(ip) < ihl {
		return f.fail(LayerIPv4, ipOff, ErrTruncated)
	}
	f.IP.TOS = ip[1]
	f.IP.TotalLen = binary.BigEndian.Uint16(ip[2:])
	f.IP.ID = binary.BigEndian.Uint16(ip[4:])
	ff := binary.BigEndian.Uint16(ip[6:])
	f.IP.Flags = uint8(ff >> 13)
	f.IP.FragOffset = ff & 0x1fff
	f.IP.TTL = ip[8]
	f.IP.Protocol = ip[9]
	f.IP.Checksum = binary.BigEndian.Uint16(ip[10:])
	copy(f.IP.Src[:], ip[12:16])
	copy(f.IP.Dst[:], ip[16:20])
	if ihl > IPv4HeaderLen {
		f.IP.Options = ip[IPv4HeaderLen:ihl:ihl]
	}
	total := int(f.IP.TotalLen)
	if total < ihl {
		return f.fail(LayerIPv4, ipOff+2, ErrIPTotalLen)
	}
	if len(ip) < total {
		return f.fail(LayerIPv4, ipOff+2, ErrTruncated)
	}
	if Checksum(ip[:ihl]) != 0 {
		return f.fail(LayerIPv4, ipOff+10, ErrIPChecksum)
	}
	if f.IP.IsFragment() {
		f.Payload = ip[ihl:total:total]
		f.Padding = ip[total:]
		return f.fail(LayerIPv4, ipOff+6, ErrFragment)
	}
	if f.IP.Protocol != ProtocolUDP {
		return f.fail(LayerIPv4, ipOff+9, ErrNotUDP)
	}

	udpOff := ipOff + ihl
	udp := ip[ihl:total]
	if len(udp) < UDPHeaderLen {
		return f.fail(LayerUDP, udpOff, ErrTruncated)
	}
	f.UDP.SrcPort = binary.BigEndian.Uint16(udp[0:])
	f.UDP.DstPort = binary.BigEndian.Uint16(udp[2:])
	f.UDP.Length = binary.BigEndian.Uint16(udp[4:])
	f.UDP.Checksum = binary.BigEndian.Uint16(udp[6:])
	ulen := int(f.UDP.Length)
	if ulen < UDPHeaderLen || ulen > len(udp) {
		return f.fail(LayerUDP, udpOff+4, ErrUDPLength)
	}
	f.Payload = udp[UDPHeaderLen:ulen:ulen]
	f.Padding = buf[udpOff+ulen:]
	return nil
}
