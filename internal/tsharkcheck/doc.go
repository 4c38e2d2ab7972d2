// Package tsharkcheck lets tests hand packets to Wireshark's dissector and
// find out whether it considers them well-formed.
//
// WritePCAP stores Ethernet frames in a classic pcap file, UDPFrame wraps a
// UDP payload (a DHCP or TFTP message) into a complete Ethernet/IPv4/UDP
// frame, and Check runs tshark over a capture and counts the frames that are
// malformed or carry an expert note of severity warning or above. CheckFrames
// does all three steps for a test. ReadPCAP loads the frames of a capture.
//
// tsharkcheck is for tests only: product packages must never import it. It
// needs the tshark binary (Debian package tshark) on PATH. It builds frames
// with gopacket rather than with peerboot's own codec, so that it stays an
// independent witness for the codec's tests.
package tsharkcheck
