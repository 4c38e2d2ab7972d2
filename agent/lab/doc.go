// Package lab builds a whole peerboot site in network namespaces for the
// demo and the end-to-end tests: Central (on SQLite in a temporary data
// directory) and several agents run as processes of the peerboot binary,
// each in its own namespace on one bridge in 198.18.0.0/15, boot images are
// uploaded and deployed, and simulated PXE clients boot from a client
// namespace. Everything it makes is removed by Close, also after a failure.
//
// lab is for demos and tests; daemons must never import it.
package lab
