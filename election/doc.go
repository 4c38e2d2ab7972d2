// Package election decides, on every agent of a subnet independently, which
// one agent answers a PXE client: the subnet election on UDP 2012.
//
// Agents announce themselves with heartbeats (weight 0-99, load, boot images
// held). For each client every agent ranks the live, ready members the same
// way: weighted rendezvous hashing of the client MAC, with the weight scaled
// down by load and by each agent's announced balance (a multiplier with
// which it makes up, over the next load epochs, for clients the hash gave
// it too few or too many of), and agents holding the needed image ranked
// above those that do not. The first in rank answers at once and broadcasts a claim; the
// claim pins the client to it for ReserveSecs. The agent at rank k answers
// only if no claim was seen after k x ElectionWaitSecs, so a dead agent
// costs one wait, and a healthy subnet answers without any round trip.
// Weights, loads and balances change only at load-epoch boundaries; within
// Config.BoundaryGuard of one, where agents' clocks may disagree on which
// side they are, the first in rank on the new side waits 3/4 of an
// ElectionWait instead of answering at once, so clocks less than
// BoundaryGuard/2 apart never give two answers at once. When
// the answering agent lacks the image Central named, it hands the client
// (and Central's answer) to the best agent that holds it.
//
// The Elector runs over two small interfaces, Clock and Transport, so the
// same code runs on UDP broadcast (package election/udp) and in the
// simulated subnet on a virtual clock (package election/sim).
//
// election must never import the packet codecs, the pxe package, the TFTP
// server or Central: consumers (pxe) depend on it, not the other way.
package election
