// Package memsock is an in-memory engine.Socket for tests and benchmarks:
// frames or datagrams injected by the test are read by the engine, and the
// replies the engine sends are handed back to the test with their
// destination. It never allocates after New, so it can sit under
// testing.AllocsPerRun guards.
//
// It must never import pxe, election, central or tftp: it is transport
// only.
package memsock
