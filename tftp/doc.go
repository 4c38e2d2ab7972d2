// Package tftp is peerboot's TFTP server: read requests served from a
// directory or any read-only FileSource, RFC 2347/2348/2349 options and
// RFC 7440 windowsize, a whole window sent with one system call (UDP GSO,
// else sendmmsg), zero allocations per DATA packet, strict name
// resolution under the root, and per-transfer statistics.
//
// The wire format comes from codec/tftp; batching from tftp/udpbatch; the
// client lives in tftp/client. This package must never import the agent,
// engine or central packages: they plug in through FileSource and the
// statistics callback.
package tftp
