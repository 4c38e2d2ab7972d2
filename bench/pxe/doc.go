// Package pxebench is the PXE load generator and the side-by-side
// benchmark of peerboot's ProxyDHCP against dnsmasq. The load generator
// plays N PXE clients on raw Ethernet frames (distinct MACs, GUIDs and
// architectures), each doing DISCOVER -> ProxyDHCP OFFER -> REQUEST on
// 4011 -> ACK in a loop, and reports completed exchanges per second and
// latency percentiles.
//
// It is a test and benchmark tool: production packages must never import
// it, and it must not import the servers it measures (pxe, engine).
package pxebench
