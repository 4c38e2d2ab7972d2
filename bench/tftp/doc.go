// Package tftp benchmarks peerboot's TFTP server against real TFTP servers
// (atftpd, tftpd-hpa, dnsmasq, github.com/pin/tftp/v3) with one client
// (peerboot's) for all, and measures 200 concurrent transfers. It holds
// benchmarks only and must never be imported.
package tftp
