// Package codec holds the codec benchmarks, side by side with their peers in
// one run: decoding and classifying a UEFI PXE DISCOVER and building the
// ProxyDHCP OFFER (against github.com/insomniacslk/dhcp and gopacket), and
// the TFTP codec's RRQ and ACK decoding and DATA building. It only has test
// files and this one; nothing may import it.
package codec
