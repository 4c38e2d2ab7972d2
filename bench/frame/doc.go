// Package frame benchmarks codec/frame against gopacket side by side on the
// same bytes: decoding a DHCP-sized Ethernet/IPv4/UDP frame (peerboot's
// DecodeUDP4 versus gopacket's DecodingLayerParser) and encoding one
// (PutHeaders in place versus gopacket's SerializeLayers).
//
// It is test-only code: nothing may import it.
package frame
