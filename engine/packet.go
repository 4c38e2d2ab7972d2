package engine

import (
	"net/netip"
	"time"

	"github.com/peerboot/peerboot/codec/frame"
)

// epoch is the origin of Now.
var epoch = time.Now()

// Now is the engine's clock: monotonic nanoseconds since the process
// started (never 0 once the process has run a nanosecond). Packet.Received
// is on this clock, so rate limiters and caches keyed on arrival time can
// use it without reading the clock for every packet.
func Now() int64 { return int64(time.Since(epoch)) + 1 }

// MaxFrame is the size of every preallocated receive and reply buffer: an
// Ethernet frame of a 1500-byte MTU with a VLAN tag fits with room to spare.
// Longer frames are truncated by the socket and counted as malformed.
const MaxFrame = 2048

// FrameHeadroom is the room kept in front of a reply's payload for the
// Ethernet (14), IPv4 (20) and UDP (8) headers, so a raw socket can put the
// headers in place without copying the payload.
const FrameHeadroom = 14 + 20 + 8

// MaxPayload is the largest reply payload a handler may write.
const MaxPayload = MaxFrame - FrameHeadroom

// Packet is one received UDP datagram in a buffer owned by the engine. The
// handler may read it only during Handle; the buffer is reused afterwards.
type Packet struct {
	// Frame is the whole Ethernet frame when the packet came from a raw
	// socket, nil when it came from a UDP socket.
	Frame []byte
	// Payload is the UDP payload (the DHCP/BOOTP message).
	Payload []byte

	SrcMAC, DstMAC   frame.MAC // zero on the UDP-socket path
	SrcIP, DstIP     netip.Addr
	SrcPort, DstPort uint16
	// IfIndex is the interface the packet arrived on.
	IfIndex int
	// Received is when the read that returned the packet completed, on
	// the Now clock; 0 when unknown (a packet not read by an Engine).
	// The engine reads the clock once per read, not per packet.
	Received int64
	// Decoded holds the decoded headers of Frame (raw path only; its
	// slices alias Frame), e.g. the 802.1Q tag.
	Decoded frame.Frame

	buf [MaxFrame]byte
}

// Buffer is the packet's whole preallocated buffer, for a socket to read
// into. After reading, the socket sets Frame (raw path) or Payload and the
// addresses (UDP path).
func (p *Packet) Buffer() []byte { return p.buf[:] }

// reset clears everything but the buffer.
func (p *Packet) reset() {
	p.Frame, p.Payload = nil, nil
	p.SrcMAC, p.DstMAC = [6]byte{}, [6]byte{}
	p.SrcIP, p.DstIP = netip.Addr{}, netip.Addr{}
	p.SrcPort, p.DstPort, p.IfIndex = 0, 0, 0
	p.Received = 0
	p.Decoded = frame.Frame{}
}

// ReplyBuffer is where a handler builds its reply. Each worker owns one and
// reuses it for every packet, so writing a reply never allocates as long as
// the handler writes into Payload's existing capacity (MaxPayload bytes).
type ReplyBuffer struct {
	// Payload is empty with capacity MaxPayload when Handle is called. The
	// handler writes the whole BOOTP/DHCP reply into it, e.g.
	// reply.Payload = msg.AppendTo(reply.Payload).
	Payload []byte
	// DstPort, when non-zero, overrides the destination UDP port chosen
	// by Route (e.g. a DHCP-snooping client port).
	DstPort uint16

	inline bool // owned by the engine's reader: the reply is sent in a batch
	buf    [MaxFrame]byte
}

// reset makes the buffer ready for the next reply.
func (r *ReplyBuffer) reset() {
	r.Payload = r.buf[FrameHeadroom:FrameHeadroom]
	r.DstPort = 0
}

// Frame returns a slice of n header bytes directly followed by the payload,
// using the headroom when the payload still lives in the buffer (no copy),
// or copying the payload behind the headroom when the handler replaced the
// slice. ok is false when n exceeds the headroom or the payload does not fit.
func (r *ReplyBuffer) Frame(n int) (frame []byte, ok bool) {
	if n > FrameHeadroom || len(r.Payload) > MaxPayload {
		return nil, false
	}
	start := FrameHeadroom - n
	if len(r.Payload) == 0 || &r.Payload[0] != &r.buf[FrameHeadroom] {
		copy(r.buf[FrameHeadroom:], r.Payload)
	}
	return r.buf[start : FrameHeadroom+len(r.Payload)], true
}

// NewReplyBuffer returns a ready reply buffer (for sockets' own tests and
// for callers that drive a Handler directly).
func NewReplyBuffer() *ReplyBuffer {
	r := new(ReplyBuffer)
	r.reset()
	return r
}
