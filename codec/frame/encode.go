package frame

import "encoding/binary"

// PutHeaders writes h's Ethernet, IPv4 and UDP headers into buf[:h.Len()]
// in front of a payload of payloadLen bytes that the caller has already
// written at buf[h.Len():], and returns the length of the whole frame.
// Nothing is copied: build the payload at offset h.Len() (HeaderLen for an
// untagged frame without IPv4 options), then call PutHeaders.
//
// With Mode Compute (the zero value) the lengths and both checksums are
// computed; see Mode for the others. The EtherType written is always IPv4
// and the IPv4 protocol always UDP. PutHeaders does not pad the frame to
// the Ethernet minimum of 60 bytes; the caller or the NIC does that.
func PutHeaders(buf []byte, h *Header, payloadLen int) (int, error) {
	if h.Mode > Verbatim {
		return 0, ErrMode
	}
	opts := len(h.IP.Options)
	if opts%4 != 0 || opts > IPv4MaxOptionsLen {
		return 0, ErrIPOptions
	}
	hlen := h.Len()
	ihl := IPv4HeaderLen + opts
	if payloadLen < 0 || payloadLen > 0xffff-ihl-UDPHeaderLen {
		return 0, ErrPayloadTooLarge
	}
	n := hlen + payloadLen
	if len(buf) < n {
		return 0, ErrBufferTooSmall
	}

	copy(buf[0:6], h.Eth.Dst[:])
	copy(buf[6:12], h.Eth.Src[:])
	off := 12
	if h.Eth.Tagged {
		binary.BigEndian.PutUint16(buf[off:], EtherTypeVLAN)
		tci := uint16(h.Eth.VLAN.Priority&0x7)<<13 | h.Eth.VLAN.ID&0x0fff
		if h.Eth.VLAN.DropEligible {
			tci |= 0x1000
		}
		binary.BigEndian.PutUint16(buf[off+2:], tci)
		off += VLANTagLen
	}
	binary.BigEndian.PutUint16(buf[off:], EtherTypeIPv4)
	off += 2

	ip := buf[off : off+ihl]
	udpLen := uint16(UDPHeaderLen + payloadLen)
	totalLen, ulen := uint16(ihl)+udpLen, udpLen
	if h.Mode == Verbatim {
		totalLen, ulen = h.IP.TotalLen, h.UDP.Length
	}
	ip[0] = 0x40 | uint8(ihl/4)
	ip[1] = h.IP.TOS
	binary.BigEndian.PutUint16(ip[2:], totalLen)
	binary.BigEndian.PutUint16(ip[4:], h.IP.ID)
	binary.BigEndian.PutUint16(ip[6:], uint16(h.IP.Flags&0x7)<<13|h.IP.FragOffset&0x1fff)
	ip[8] = h.IP.TTL
	ip[9] = ProtocolUDP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], h.IP.Src[:])
	copy(ip[16:20], h.IP.Dst[:])
	copy(ip[IPv4HeaderLen:], h.IP.Options)
	ipSum := h.IP.Checksum
	if h.Mode != Verbatim {
		ipSum = Checksum(ip)
	}
	binary.BigEndian.PutUint16(ip[10:], ipSum)

	udp := buf[off+ihl : n]
	binary.BigEndian.PutUint16(udp[0:], h.UDP.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], h.UDP.DstPort)
	binary.BigEndian.PutUint16(udp[4:], ulen)
	udp[6], udp[7] = 0, 0
	var udpSum uint16
	switch h.Mode {
	case Compute:
		udpSum = UDPChecksum(h.IP.Src, h.IP.Dst, udp)
	case PartialUDPChecksum:
		udpSum = ^finish(pseudoSum(h.IP.Src, h.IP.Dst, udpLen))
	case Verbatim:
		udpSum = h.UDP.Checksum
	}
	binary.BigEndian.PutUint16(udp[6:], udpSum)
	return n, nil
}

// Append appends a frame with headers h and the given payload to dst and
// returns the extended slice. It does not allocate when dst has room for
// h.Len()+len(payload) more bytes. On error dst is returned unchanged.
func Append(dst []byte, h *Header, payload []byte) ([]byte, error) {
	start := len(dst)
	hlen := h.Len()
	n := hlen + len(payload)
	if n < hlen || len(payload) > 0xffff {
		return dst, ErrPayloadTooLarge
	}
	if cap(dst)-start < n {
		grown := make([]byte, start, start+n)
		copy(grown, dst)
		dst = grown
	}
	out := dst[:start+n]
	copy(out[start+hlen:], payload)
	if _, err := PutHeaders(out[start:], h, len(payload)); err != nil {
		return dst[:start], err
	}
	return out, nil
}

// AppendFrame appends f (its headers, Payload and Padding) to dst, the
// inverse of DecodeUDP4: with f.Mode set to Verbatim the result equals the
// decoded bytes exactly. It does not allocate when dst has room.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	out, err := Append(dst, &f.Header, f.Payload)
	if err != nil {
		return dst, err
	}
	return append(out, f.Padding...), nil
}
