// Package lab builds a whole peerboot site in network namespaces for the
// demo and the end-to-end tests: Central (on SQLite in a temporary data
// directory) and several agents run as processes of the peerboot binary,
// each in its own namespace on one bridge in 198.18.0.0/15, boot images are
// uploaded and deployed, and simulated PXE clients boot from a client
// namespace. With a core subnet, Central sits behind a router, and the
// branch's DHCP can be served through a real relay from the core (a plain
// DHCP server and the peerboot responder) while the switch drops the
// agents' own DHCP answers, as DHCP snooping does. Sites built in an
// existing lab (one with QEMU guests) may bring their own images and
// deployments and extra Central and agent flags. Everything it makes is
// removed by Close, also after a failure.
//
// lab is for demos and tests; daemons must never import it.
package lab
