// Package reliability holds the reliability and security tests of peerboot:
// hostile traffic against a running agent, resource limits and hostile
// names against the TFTP server, forged and rogue election messages,
// hostile input to Central and its database going away, and crashes of an
// agent in the middle of its work. The tests drive the real peerboot
// binary (built once by TestMain) over real sockets, on loopback or in
// network namespaces of internal/netlab (198.18.0.0/15).
//
// The package has no code of its own besides these tests; nothing may
// import it. Cases too slow for every CI run carry the build tag
// "reliability" (see docs/RELIABILITY.md for the commands).
package reliability
