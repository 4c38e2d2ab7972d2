// Package pxebench is the PXE load generator and the side-by-side
// benchmark of peerboot's ProxyDHCP against dnsmasq. The load generator
// plays N PXE clients on raw Ethernet frames (distinct MACs, GUIDs and
// architectures), each doing DISCOVER -> ProxyDHCP OFFER -> REQUEST on
// 4011 -> ACK in a loop, and reports completed exchanges per second and
// latency percentiles. The benchmark joins each server's namespace and
// the load generator's by one veth pair (netlab.NewPair), so the figures
// carry no bridge; PXEBENCH_FABRIC=bridge measures on a netlab bridge.
//
// It is a test and benchmark tool: production packages must never import
// it, and it must not import the servers it measures (pxe, engine).
package pxebench
