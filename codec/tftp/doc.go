// Package tftp is the TFTP wire codec (RFC 1350, options RFC 2347/2348/2349
// and windowsize RFC 7440): it parses RRQ/WRQ, DATA, ACK, ERROR and OACK
// packets into caller-owned values that alias the input buffer, and appends
// packets to caller buffers, all without heap allocations.
//
// It is pure computation: it must never import a network, file or logging
// package (no net, os, io, log/slog). Sockets, sessions and policy live in
// the peerboot tftp package, which builds on this one.
package tftp
