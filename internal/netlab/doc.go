// Package netlab builds throw-away virtual subnets for tests: network
// namespaces joined by a Linux bridge (Lab), or two namespaces joined by
// one veth pair with nothing between them (Pair, for benchmarks that must
// not measure a fabric), addressed only inside 198.18.0.0/15,
// with no route out. Everything a Lab creates is removed by Close (processes
// are killed by PID first), so tests can use real sockets, real peers and
// real firmware without touching any other network.
//
// netlab is for tests and the demo; product packages must never import it.
// It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip command.
package netlab
