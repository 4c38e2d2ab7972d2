// Package engine is peerboot's packet engine: it moves BOOTP/DHCP datagrams
// between the wire and a Handler as cheaply as possible. It knows nothing
// about PXE policy.
//
// A Socket (engine/rawsock: an AF_PACKET socket bound to one interface with
// a kernel filter attached before bind; engine/udpsock: a UDP socket with
// batch reads and packet info; engine/memsock: in memory, for tests) is
// read in batches by one reader goroutine into preallocated Packet buffers.
// With Config.InlineMax set, the reader serves up to that many packets of
// each read itself, each with its own preallocated ReplyBuffer, and when
// the socket is a BatchSender the replies to one read leave with one
// system call; the rest of the read goes to the ring. The reader puts
// packets on a fixed ring (a bounded queue of Config.RingSize entries) and
// never waits: when the ring is full the packet is dropped and counted. A
// pool of workers takes packets off the ring. Either way a packet's raw
// frame is decoded (Ethernet, IPv4, UDP), the Handler is called with the
// packet and a ReplyBuffer, the reply's destination is picked with Route
// (RFC 2131 section 4.1: relay, ciaddr, broadcast or yiaddr, decided in
// that one function) and the reply is sent through the socket. Nothing on
// that path allocates: testing.AllocsPerRun guards it on memsock and, in
// the socket packages, on real sockets.
//
// Handler contract: Handle(req, reply) is called concurrently from the
// workers. req.Payload is the UDP payload; req carries the MAC, IP and
// port addresses, the interface index and the time of its read on the Now
// clock (one clock read per read, for the handler's rate limits and
// caches). The handler writes the whole
// BOOTP reply into reply.Payload (empty, capacity MaxPayload) without
// reallocating it, optionally sets reply.DstPort, and returns true to send.
// The reply's ciaddr, yiaddr, giaddr, flags and chaddr fields decide where
// it goes.
//
// Counters (received, reads, filtered by the kernel, dropped because the
// ring or the socket's kernel queue was full, malformed, ignored, sent,
// send errors) are read with Engine.Counters for metrics.
//
// engine is transport only: it must never import pxe, election, central or
// tftp.
package engine
