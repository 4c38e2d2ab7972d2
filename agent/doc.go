// Package agent runs a full peerboot agent on one interface: the packet
// engine and PXE server answer DISCOVERs decided by Central (or the cached
// decision set while Central is away) for the clients the subnet election
// gives this agent, the TFTP server streams boot files from the local image
// cache, events go through the on-disk spool, and /metrics and /healthz
// report on it all.
//
// agent is the wiring layer: it may import every peerboot package except
// the cmd packages and Central's server side (store, api server internals).
package agent
