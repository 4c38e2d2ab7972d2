package engine_test

import (
	"encoding/binary"
	"net/netip"
)

// udpFrame builds an Ethernet/IPv4/UDP frame (checksums: IPv4 computed,
// UDP zero) for tests.
func udpFrame(srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC[:])
	copy(f[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// bootp builds a minimal BOOTP message (300 bytes) with the given fields.
func bootp(op byte, xid uint32, broadcast bool, ciaddr, yiaddr, giaddr [4]byte, chaddr [6]byte) []byte {
	m := make([]byte, 300)
	m[0], m[1], m[2] = op, 1, 6
	binary.BigEndian.PutUint32(m[4:8], xid)
	if broadcast {
		m[10] = 0x80
	}
	copy(m[12:16], ciaddr[:])
	copy(m[16:20], yiaddr[:])
	copy(m[24:28], giaddr[:])
	copy(m[28:34], chaddr[:])
	copy(m[236:240], []byte{99, 130, 83, 99})
	m[240] = 255
	return m
}

var (
	clientMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	serverMAC = [6]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	bcastMAC  = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zero4     = [4]byte{}
)

// discoverFrame is a broadcast DHCP-shaped request from 0.0.0.0:68 to
// 255.255.255.255:67.
func discoverFrame(xid uint32) []byte {
	return udpFrame(clientMAC, bcastMAC,
		netip.MustParseAddrPort("0.0.0.0:68"), netip.MustParseAddrPort("255.255.255.255:67"),
		bootp(1, xid, false, zero4, zero4, zero4, clientMAC))
}

// echoReply is a handler body: it answers a BOOTP request with the same
// message turned into a reply (op 2), without allocating.
func echoReply(payload []byte, out []byte) []byte {
	out = append(out, payload...)
	out[0] = 2
	return out
}
