// Package responder answers PXE DISCOVERs that DHCP relays forward from
// client subnets (giaddr set) on networks where DHCP snooping keeps agents
// from answering broadcasts themselves. Non-PXE DHCP and unrelayed requests
// are ignored.
//
// Referral mode (Referrer, a pxe.Decider): the responder asks Central which
// agents serve the relay's subnet and what the client boots, picks one live
// agent by weighted rendezvous hashing of the client MAC (preferring agents
// that hold the image), and answers through the relay with that agent as
// the boot server (siaddr) and the boot file, so unmodified firmware boots
// from an agent on its own subnet.
//
// Forward mode (Forwarder): the original product's scheme. The DISCOVER is
// passed to the agents of the relay's subnet on their snooping port (2067)
// with the responder as giaddr; their answer comes back on 2068 and goes out
// through the relay.
//
// responder must never import the election or the TFTP server.
package responder
