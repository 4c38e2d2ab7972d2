// Package e2e holds the agent's end-to-end tests: the real peerboot binary
// (built by the tests) runs Central and three agents in network namespaces,
// and simulated PXE clients boot from them through outages, agent kills and
// restarts. They need root and run in CI.
package e2e
