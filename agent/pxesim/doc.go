// Package pxesim is a simulated PXE client for demos and end-to-end tests:
// it broadcasts a DISCOVER with the options real firmware sends (vendor
// class PXEClient, architecture, UNDI version, machine GUID), takes the
// first ProxyDHCP OFFER, asks the offering server on port 4011 for the boot
// file, and downloads it by TFTP with blksize and windowsize, retrying like
// firmware does when nobody answers.
//
// Every socket is opened on the calling goroutine, so a caller may run Boot
// inside a network namespace (netlab's Host.Do). pxesim must never import
// the agent or the PXE server: it speaks only on the wire.
package pxesim
