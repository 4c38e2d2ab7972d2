// Package frame holds the Go fuzz targets for codec/frame: FuzzDecode
// (DecodeUDP4 never panics, its errors are typed and in range, and what it
// accepts agrees with gopacket) and FuzzDecodeEncode (whatever decodes
// re-encodes byte for byte, and re-encodes with fresh checksums into a
// frame that decodes to the same content). The seed corpus is a selection
// of frames from firmware PXE boot captures (testdata/seeds.pcap) plus
// VLAN-tagged, IPv4-options and fragment variants, and runs with the
// normal tests.
//
// It is test-only code: nothing may import it.
package frame
