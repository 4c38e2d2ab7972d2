// Package filter builds the kernel socket filter of peerboot's raw
// socket: only IPv4/UDP datagrams (not fragments, not our own outgoing
// frames) to one of the served ports reach user space. Everything else is
// dropped in the kernel before it is copied to the socket, so a busy link
// costs the agent almost nothing.
//
// The preferred filter is an eBPF socket filter, hand-assembled with
// github.com/cilium/ebpf/asm (no C compiler), that counts per destination
// port what it passed and dropped, and per reason what it dropped, in BPF
// array maps. When the kernel refuses to load or attach eBPF (old kernel,
// no privilege, Options.ForceClassic), a classic BPF program with the same
// verdicts is attached instead; it has no counters.
//
// Attach the filter to a socket before binding it, so no unfiltered packet
// is ever queued.
//
// filter must never import pxe, election, central or tftp.
package filter
