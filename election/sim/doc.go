// Package sim is an in-process simulated subnet for the election: a
// virtual clock (an event queue, no sleeps, no goroutines) and a broadcast
// network that loses, delays and reorders messages, can partition agents,
// kill them and skew their clocks, and lets tests inject or capture raw
// datagrams. It runs the real election.Elector, so what the simulation
// shows is what the agents do.
//
// sim is for tests and benchmarks; product code must never import it.
package sim
