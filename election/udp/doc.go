// Package udp is the election's real transport: IPv4 UDP broadcast on port
// 2012 (configurable), with SO_BROADCAST and SO_REUSEADDR, bound to one
// interface with SO_BINDTODEVICE so each subnet's election stays on its
// own segment. It moves datagrams only; authentication and the protocol
// live in package election.
//
// udp must never import the pxe package, Central or the packet codecs.
package udp
