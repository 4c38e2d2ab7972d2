// Package udpbatch sends and receives batches of UDP datagrams with as few
// system calls as the kernel allows: UDP GSO (UDP_SEGMENT, one sendmsg per
// up to 64 equal-size datagrams), else sendmmsg, else one write per
// datagram, chosen at run time; and recvmmsg on the receive side. Every
// call after construction is allocation-free.
//
// It is Linux-specific plumbing for the tftp server and client and knows
// nothing about TFTP; it must never import peerboot packages.
package udpbatch
