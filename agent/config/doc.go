// Package config is the peerboot agent's configuration: every setting a PXE
// administrator expects, read from a file of "name = value" lines, then the
// environment (PEERBOOT_NAME), then command-line flags, each source
// overriding the one before, and validated at start with errors that name
// the setting.
//
// config must never import the packet engine, the PXE server, the TFTP
// server, the election or the Central client: it only describes settings.
package config
