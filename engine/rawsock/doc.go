// Package rawsock is the engine.Socket peerboot serves DHCP ports with: an
// AF_PACKET socket bound to one interface, with the engine/filter kernel
// filter attached before the socket is bound, so only IPv4/UDP to the
// served ports is ever queued. Frames arrive in a TPACKET_V3 receive ring
// shared with the kernel, which hands over a block of frames when it is
// full or its timeout expires (one wake-up per block, no system call per
// frame); they are copied into the engine's preallocated packet buffers.
// Replies are whole Ethernet frames (built with codec/frame in the reply
// buffer's headroom) from the interface's MAC and IPv4 address, written
// into the TPACKET_V3 transmit ring of a second AF_PACKET socket (which
// receives nothing) with the UDP checksum left to offload, and sent with
// one send() per batch (engine.BatchSender) or per reply. recvmmsg,
// sendmmsg and write are the fallbacks when the kernel refuses a ring. ClaimUDPPort holds a served
// port on the host's UDP stack so it sends no ICMP port unreachable.
// Reading and sending do not allocate.
//
// rawsock must never import pxe, election, central or tftp.
package rawsock
