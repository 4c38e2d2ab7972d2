// Package udpsock is the engine.Socket for an ordinary UDP socket: port
// 4011 (PXE boot-server requests, unicast to the agent) and every port on
// hosts where raw sockets are not allowed. Reads are batched with one
// recvmmsg (golang.org/x/sys/unix) into the engine's packet buffers, with
// preallocated message headers, source addresses and control buffers, and
// each datagram's packet info (IP_PKTINFO, switched on through
// golang.org/x/net/ipv4) gives the interface it arrived on and the address
// it was sent to. Replies leave through the interface
// the request came in on (IP_PKTINFO), broadcast when Route says so: one
// sendmsg per reply from the workers, one sendmmsg per batch when the
// engine's reader serves a read itself (engine.BatchSender). Nothing on
// this path allocates.
//
// udpsock must never import pxe, election, central or tftp.
package udpsock
