package engine

import (
	"encoding/binary"
	"net/netip"
)

// decodeFrame fills p's addresses and Payload from p.Frame (Ethernet II,
// IPv4 without fragments, UDP). It reports false for anything else.
func decodeFrame(p *Packet) bool {
	f := p.Frame
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 17 {
		return false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total < ihl+8 || total > len(ip) || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return false
	}
	udp := ip[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < 8 || ulen > len(udp) {
		return false
	}
	copy(p.DstMAC[:], f[0:6])
	copy(p.SrcMAC[:], f[6:12])
	p.SrcIP = netip.AddrFrom4([4]byte(ip[12:16]))
	p.DstIP = netip.AddrFrom4([4]byte(ip[16:20]))
	p.SrcPort = binary.BigEndian.Uint16(udp[0:2])
	p.DstPort = binary.BigEndian.Uint16(udp[2:4])
	p.Payload = udp[8:ulen]
	return true
}
