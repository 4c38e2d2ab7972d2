package frame

import (
	"net/netip"
	"strconv"
)

// Header sizes in bytes.
const (
	EthernetHeaderLen = 14 // destination, source, EtherType
	VLANTagLen        = 4  // 802.1Q TPID + tag control information
	IPv4HeaderLen     = 20 // IPv4 header without options
	IPv4MaxOptionsLen = 40 // IHL is at most 15 words
	UDPHeaderLen      = 8

	// HeaderLen is the length of the headers of an untagged frame whose
	// IPv4 header has no options: the offset of the UDP payload.
	HeaderLen = EthernetHeaderLen + IPv4HeaderLen + UDPHeaderLen
	// HeaderLenVLAN is HeaderLen for a frame with one 802.1Q tag.
	HeaderLenVLAN = HeaderLen + VLANTagLen
	// MaxHeaderLen is the longest header this package writes or reads:
	// one VLAN tag and a full set of IPv4 options.
	MaxHeaderLen = HeaderLenVLAN + IPv4MaxOptionsLen
	// MaxPayloadLen is the largest UDP payload an IPv4 datagram can carry
	// without IPv4 options.
	MaxPayloadLen = 0xffff - IPv4HeaderLen - UDPHeaderLen
)

// EtherType and protocol numbers this package reads and writes.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeVLAN = 0x8100 // 802.1Q tag protocol identifier
	ProtocolUDP   = 17
)

// IPv4 flag bits as they appear in IPv4.Flags (the three high bits of the
// flags/fragment-offset field, shifted down).
const (
	FlagMoreFragments = 0x1
	FlagDontFragment  = 0x2
	FlagReserved      = 0x4
)

// MAC is an IEEE 802 MAC-48 address.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// String formats the address as six colon-separated lower-case hex bytes.
func (m MAC) String() string {
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, v := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[v>>4], hexDigits[v&0xf])
	}
	return string(b)
}

// VLANTag is the tag control information of an 802.1Q tag.
type VLANTag struct {
	Priority     uint8  // PCP, 0-7
	DropEligible bool   // DEI
	ID           uint16 // VID, 0-4095
}

// Ethernet is an Ethernet II header with an optional 802.1Q tag.
type Ethernet struct {
	Dst, Src MAC
	// Tagged says the frame carries one 802.1Q tag (TPID 0x8100), held
	// in VLAN.
	Tagged bool
	VLAN   VLANTag
	// EtherType is the type of the payload (after the tag, if any).
	// Encoding always writes EtherTypeIPv4.
	EtherType uint16
}

// Len returns the length of the Ethernet header including the tag.
func (e *Ethernet) Len() int {
	if e.Tagged {
		return EthernetHeaderLen + VLANTagLen
	}
	return EthernetHeaderLen
}

// IPv4 is an IPv4 header. Version is always 4; the header length is
// IPv4HeaderLen + len(Options).
type IPv4 struct {
	TOS      uint8
	TotalLen uint16 // header plus payload, as on the wire
	ID       uint16
	// Flags holds FlagReserved, FlagDontFragment and FlagMoreFragments.
	Flags uint8
	// FragOffset is the fragment offset in units of 8 bytes.
	FragOffset uint16
	TTL        uint8
	Protocol   uint8
	Checksum   uint16 // header checksum, as on the wire
	Src, Dst   [4]byte
	// Options are the raw option bytes (a multiple of 4, at most 40). After
	// decoding they alias the input buffer.
	Options []byte
}

// HeaderLen returns the length of the IPv4 header including options.
func (ip *IPv4) HeaderLen() int { return IPv4HeaderLen + len(ip.Options) }

// IsFragment reports whether the datagram is a fragment of a larger one
// (more fragments follow, or it is not the first).
func (ip *IPv4) IsFragment() bool {
	return ip.Flags&FlagMoreFragments != 0 || ip.FragOffset != 0
}

// DontFragment reports whether the DF flag is set.
func (ip *IPv4) DontFragment() bool { return ip.Flags&FlagDontFragment != 0 }

// SrcAddr returns the source address as a netip.Addr (no allocation).
func (ip *IPv4) SrcAddr() netip.Addr { return netip.AddrFrom4(ip.Src) }

// DstAddr returns the destination address as a netip.Addr (no allocation).
func (ip *IPv4) DstAddr() netip.Addr { return netip.AddrFrom4(ip.Dst) }

// UDP is a UDP header.
type UDP struct {
	SrcPort, DstPort uint16
	Length           uint16 // header plus payload, as on the wire
	Checksum         uint16 // as on the wire; 0 means none
}

// Mode says how the encoder fills the length and checksum fields.
type Mode uint8

const (
	// Compute sets IPv4.TotalLen and UDP.Length from the payload and
	// computes both the IPv4 header checksum and the UDP checksum. It is
	// the zero value, and what a sender wants.
	Compute Mode = iota
	// ComputeNoUDPChecksum is Compute but writes a zero UDP checksum,
	// which IPv4 receivers take as "no checksum".
	ComputeNoUDPChecksum
	// PartialUDPChecksum is Compute but leaves the UDP checksum for the
	// device to finish (checksum offload, CHECKSUM_PARTIAL): the field
	// holds the folded sum of the IPv4 pseudo-header, not complemented, and
	// the device (or the kernel) sums the datagram from its UDP header on
	// top of it and writes the complement back.
	PartialUDPChecksum
	// Verbatim writes TotalLen, Length and both checksums exactly as given
	// in the Header, so that a decoded frame re-encodes byte for byte even
	// when its checksums or lengths are wrong.
	Verbatim
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Compute:
		return "compute"
	case ComputeNoUDPChecksum:
		return "compute-no-udp-checksum"
	case PartialUDPChecksum:
		return "partial-udp-checksum"
	case Verbatim:
		return "verbatim"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Header is everything in front of a UDP payload.
type Header struct {
	Eth Ethernet
	IP  IPv4
	UDP UDP
	// Mode is used by the encoder only; DecodeUDP4 sets it to Compute.
	Mode Mode
}

// Len returns the length of the encoded headers, which is the offset of
// the UDP payload in the frame.
func (h *Header) Len() int { return h.Eth.Len() + h.IP.HeaderLen() + UDPHeaderLen }

// Frame is a decoded Ethernet/IPv4/UDP frame. Its slices alias the buffer
// it was decoded from; reuse a Frame to decode without allocating.
type Frame struct {
	Header
	// Payload is the UDP payload (UDP.Length minus the header). For a
	// fragment (ErrFragment) it is the IPv4 payload instead.
	Payload []byte
	// Padding is whatever follows the UDP datagram in the buffer,
	// usually Ethernet padding up to the 60-byte minimum frame.
	Padding []byte

	err Error // storage for the error DecodeUDP4 returns, so it does not allocate
}
