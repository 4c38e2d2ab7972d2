// Package pxe is the PXE boot-server policy of peerboot: it decides which
// packets are PXE clients, what each client boots (by architecture, by
// iPXE detection, by a pluggable Decider), and writes the ProxyDHCP OFFER
// for a DISCOVER on port 67 (or 2067 in DHCP-snooping mode) and the ACK for
// a boot-server REQUEST on port 4011.
//
// It sits on top of the packet engine (it implements the engine's Handler)
// and the wire codec. Everything on the per-packet path is allocation free.
//
// pxe must never import the Central client, the election, the TFTP server
// or any socket package: those plug in through the Decider interface
// defined here and through the engine.
package pxe
