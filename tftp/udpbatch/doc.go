// Package udpbatch sends and receives batches of UDP datagrams with as few
// system calls as the kernel allows: UDP GSO (UDP_SEGMENT, one sendmsg per
// up to 64 equal-size datagrams), else sendmmsg, else one write per
// datagram, chosen at run time; and recvmmsg on the receive side. Every
// call after construction is allocation-free.
//
// Batches go through a net.UDPConn (waiting in Go's network poller) or a
// Socket, a UDP socket outside the poller whose reads block the calling
// thread, so that a datagram wakes the waiting thread directly: the
// shorter path for a few round-trip-bound transfers.
//
// It is Linux-specific plumbing for the tftp server and client and knows
// nothing about TFTP; it must never import peerboot packages.
package udpbatch
