package engine

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/peerboot/peerboot/codec/frame"
)

// Well-known BOOTP ports.
const (
	ServerPort = 67
	ClientPort = 68
)

// RouteKind says how a reply is addressed.
type RouteKind uint8

const (
	// RouteBroadcast: IP 255.255.255.255, MAC ff:ff:ff:ff:ff:ff.
	RouteBroadcast RouteKind = iota + 1
	// RouteRelay: UDP to the relay agent at giaddr, port 67.
	RouteRelay
	// RouteCIAddr: unicast to the client's own address (ciaddr).
	RouteCIAddr
	// RouteYIAddr: unicast to yiaddr at the client hardware address.
	RouteYIAddr
)

func (k RouteKind) String() string {
	switch k {
	case RouteBroadcast:
		return "broadcast"
	case RouteRelay:
		return "relay"
	case RouteCIAddr:
		return "unicast-ciaddr"
	case RouteYIAddr:
		return "unicast-yiaddr"
	}
	return "unknown"
}

// Addressing is the part of a BOOTP message that decides where its reply
// goes (RFC 2131 section 4.1).
type Addressing struct {
	CIAddr, YIAddr, GIAddr [4]byte
	Broadcast              bool // the BROADCAST bit of the flags field
	CHAddr                 frame.MAC
}

// Destination is where one reply is sent.
type Destination struct {
	Kind    RouteKind
	MAC     frame.MAC // next-hop Ethernet address (raw path only)
	IP      netip.Addr
	Port    uint16 // destination UDP port
	SrcPort uint16 // source UDP port
}

var errShortBOOTP = errors.New("reply shorter than a BOOTP header")

// bootpFixedLen is the length of the BOOTP header up to and including chaddr.
const bootpFixedLen = 44

// AddressingFromBOOTP reads the addressing fields at their fixed offsets
// of a BOOTP/DHCP message (op, htype, hlen, hops, xid, secs, flags, ciaddr,
// yiaddr, siaddr, giaddr, chaddr).
func AddressingFromBOOTP(msg []byte) (Addressing, error) {
	var a Addressing
	if len(msg) < bootpFixedLen {
		return a, errShortBOOTP
	}
	a.Broadcast = binary.BigEndian.Uint16(msg[10:12])&0x8000 != 0
	copy(a.CIAddr[:], msg[12:16])
	copy(a.YIAddr[:], msg[16:20])
	copy(a.GIAddr[:], msg[24:28])
	copy(a.CHAddr[:], msg[28:34])
	return a, nil
}

// Route decides where a reply goes, following RFC 2131 section 4.1. It is
// the only place in peerboot that makes this decision.
//
//   - giaddr set: UDP to the relay agent at giaddr, port 67, through the
//     Ethernet hop the request came from.
//   - else ciaddr set: unicast to ciaddr, through the hop the request came
//     from, to the port the client sent from.
//   - else broadcast bit set, or no yiaddr to unicast to (ProxyDHCP never
//     assigns one): broadcast to 255.255.255.255 / ff:ff:ff:ff:ff:ff.
//   - else unicast to yiaddr at chaddr.
//
// a describes the reply (whose ciaddr, giaddr, flags and chaddr are copied
// from the request); req is the request it answers. The reply's source
// port is the port the request was sent to; its destination port is the
// port the client sent from (68 when unknown).
func Route(a Addressing, req *Packet) Destination {
	d := Destination{SrcPort: req.DstPort, Port: req.SrcPort}
	if d.Port == 0 {
		d.Port = ClientPort
	}
	if d.SrcPort == 0 {
		d.SrcPort = ServerPort
	}
	switch {
	case a.GIAddr != [4]byte{}:
		d.Kind, d.IP, d.Port, d.MAC = RouteRelay, netip.AddrFrom4(a.GIAddr), ServerPort, req.SrcMAC
	case a.CIAddr != [4]byte{}:
		d.Kind, d.IP, d.MAC = RouteCIAddr, netip.AddrFrom4(a.CIAddr), req.SrcMAC
	case a.Broadcast || a.YIAddr == [4]byte{}:
		d.Kind, d.IP, d.MAC = RouteBroadcast, netip.AddrFrom4([4]byte{255, 255, 255, 255}), frame.Broadcast
	default:
		d.Kind, d.IP, d.MAC = RouteYIAddr, netip.AddrFrom4(a.YIAddr), a.CHAddr
	}
	return d
}
