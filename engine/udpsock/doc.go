// Package udpsock is the engine.Socket for an ordinary UDP socket: port
// 4011 (PXE boot-server requests, unicast to the agent) and every port on
// hosts where raw sockets are not allowed. Reads are batched with
// recvmmsg through golang.org/x/net/ipv4 (ReadBatch), and each datagram's
// packet info gives the interface it arrived on and the address it was
// sent to. Replies leave through the interface the request came in on
// (IP_PKTINFO), broadcast when Route says so.
//
// Unlike engine/rawsock, this path allocates a little per datagram (the
// standard library's source addresses): use the raw socket where speed
// matters.
//
// udpsock must never import pxe, election, central or tftp.
package udpsock
