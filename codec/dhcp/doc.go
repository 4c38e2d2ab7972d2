// Package dhcp decodes and builds BOOTP / DHCPv4 messages with the PXE
// extensions a network-boot server needs, without touching the heap.
//
// Decode parses a message into a caller-owned Packet that aliases the input
// buffer: the fixed BOOTP header, the magic cookie, every option in wire
// order, RFC 3396 long options split over several instances, option overload
// (option 52: more options inside the sname and file fields) and pad/end.
// Malformed input yields a *DecodeError naming the field and byte offset.
// Typed accessors read what a PXE server looks at: message type (53), server
// identifier (54), parameter request list (55), maximum message size (57),
// vendor class (60, including the PXEClient / HTTPClient architecture and
// UNDI version), client identifier (61), user class (77, iPXE detection),
// client system architectures (93), network interface identifier (94),
// client machine identifier (97, SMBIOS GUID), PXE vendor sub-options (43),
// TFTP server and boot file names (66, 67), relay agent information (82),
// iPXE encapsulated options (175) and host name (12).
//
// Builder writes a reply (a ProxyDHCP OFFER, or the ACK to a boot-server
// REQUEST on port 4011) into a caller buffer, honouring the client's maximum
// message size and padding to the 300-byte BOOTP minimum.
//
// The package is a pure codec: it must never import I/O packages (net, os,
// syscall, the engine or anything that opens sockets or files), and its
// decode and build paths must not allocate. Addresses are [4]byte values.
package dhcp
