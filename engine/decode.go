package engine

import (
	"github.com/peerboot/peerboot/codec/frame"
)

// decodeFrame fills p's addresses and Payload from p.Frame (Ethernet II
// with an optional 802.1Q tag, IPv4 with a valid header checksum and no
// fragments, UDP). It reports false for anything else.
//
// The UDP checksum is not verified: an AF_PACKET socket sees frames whose
// checksum the sender left to offload (CHECKSUM_PARTIAL on veth, bridges,
// virtio), which would fail although the datagram is fine.
func decodeFrame(p *Packet) bool {
	f := &p.Decoded
	if frame.DecodeUDP4(p.Frame, f) != nil {
		return false
	}
	p.DstMAC, p.SrcMAC = f.Eth.Dst, f.Eth.Src
	p.SrcIP, p.DstIP = f.IP.SrcAddr(), f.IP.DstAddr()
	p.SrcPort, p.DstPort = f.UDP.SrcPort, f.UDP.DstPort
	p.Payload = f.Payload
	return true
}
