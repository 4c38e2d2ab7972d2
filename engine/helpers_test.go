package engine_test

import (
	"encoding/binary"
	"net/netip"

	"github.com/peerboot/peerboot/codec/frame"
)

// udpFrame builds an Ethernet/IPv4/UDP frame with both checksums.
func udpFrame(srcMAC, dstMAC frame.MAC, src, dst netip.AddrPort, payload []byte) []byte {
	h := frame.Header{
		Eth: frame.Ethernet{Dst: dstMAC, Src: srcMAC},
		IP:  frame.IPv4{TTL: 64, Src: src.Addr().As4(), Dst: dst.Addr().As4()},
		UDP: frame.UDP{SrcPort: src.Port(), DstPort: dst.Port()},
	}
	f, err := frame.Append(nil, &h, payload)
	if err != nil {
		panic(err)
	}
	return f
}

// bootp builds a minimal BOOTP message (300 bytes) with the given fields.
func bootp(op byte, xid uint32, broadcast bool, ciaddr, yiaddr, giaddr [4]byte, chaddr frame.MAC) []byte {
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
	clientMAC = frame.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	serverMAC = frame.MAC{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	bcastMAC  = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
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
