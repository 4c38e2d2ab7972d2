// Package frame decodes and encodes the link, network and transport headers
// around peerboot's UDP messages: Ethernet II with an optional 802.1Q VLAN
// tag, IPv4 (header checksum, options, fragment flags and offset) and UDP
// (checksum over the IPv4 pseudo-header, where zero means "no checksum").
//
// It exists so the engine can read raw frames from a packet socket and send
// a reply straight to a client's MAC address before that client has an IP
// address. Both directions work on caller-owned memory and never allocate:
//
//   - DecodeUDP4 fills a caller-owned Frame whose Options, Payload and
//     Padding slices alias the input buffer. Malformed input yields an
//     *Error naming the layer, the byte offset and the Reason; errors.Is
//     matches a Reason such as ErrTruncated or ErrFragment.
//   - PutHeaders writes the headers in front of a payload that the caller
//     already built at offset Header.Len() of the same buffer, so a reply is
//     assembled without copying; Append and AppendFrame append to a slice.
//
// Addresses are fixed-size arrays (MAC and [4]byte), never net.IP.
//
// Import rule: frame is a pure codec. It must never import an I/O package
// (os, net, syscall, golang.org/x/sys, io) nor anything from peerboot
// outside codec; only the standard library's pure packages such as
// encoding/binary, errors, strconv and net/netip.
package frame
