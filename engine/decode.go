package engine

import (
	"github.com/peerboot/peerboot/codec/frame"
)

// decodeFrame fills p's addresses and Payload from p.Frame (Ethernet II
// with an optional 802.1Q tag, IPv4 without fragments, UDP with a valid or
// absent checksum). It reports false for anything else.
func decodeFrame(p *Packet) bool {
	f := &p.Decoded
	if frame.DecodeUDP4(p.Frame, f) != nil || !f.UDPChecksumValid() {
		return false
	}
	p.DstMAC, p.SrcMAC = f.Eth.Dst, f.Eth.Src
	p.SrcIP, p.DstIP = f.IP.SrcAddr(), f.IP.DstAddr()
	p.SrcPort, p.DstPort = f.UDP.SrcPort, f.UDP.DstPort
	p.Payload = f.Payload
	return true
}
