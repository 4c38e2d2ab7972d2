// Package rawsock is the engine.Socket peerboot serves DHCP ports with: an
// AF_PACKET socket bound to one interface, with the engine/filter kernel
// filter attached before the socket is bound, so only IPv4/UDP to the
// served ports is ever queued. Frames are read in batches with recvmmsg
// straight into the engine's preallocated packet buffers, and replies are
// written as whole Ethernet frames (built with codec/frame in the reply
// buffer's headroom) from the interface's MAC and IPv4 address. Reading
// and sending do not allocate.
//
// rawsock must never import pxe, election, central or tftp.
package rawsock
