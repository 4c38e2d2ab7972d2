package frame

import (
	"encoding/binary"
	"math/bits"
)

// sum adds b to the running one's-complement sum acc as big-endian 16-bit
// words (an odd trailing byte is padded with zero). It adds 64-bit words
// with end-around carry, which folds to the same 16-bit sum. The result is
// not folded; fold it with finish.
func sum(acc uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b)) << 32
		b = b[4:]
	}
	if len(b) >= 2 {
		tail |= uint64(binary.BigEndian.Uint16(b)) << 16
		b = b[2:]
	}
	if len(b) == 1 {
		tail |= uint64(b[0]) << 8
	}
	acc, carry = bits.Add64(acc, tail, carry)
	acc, carry = bits.Add64(acc, carry, 0)
	return acc + carry
}

// finish folds a running sum to 16 bits and complements it.
func finish(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff) // at most 33 bits
	acc = (acc >> 16) + (acc & 0xffff)     // at most 17 bits
	acc = (acc >> 16) + (acc & 0xffff)     // at most 16 bits plus a carry
	acc = (acc >> 16) + (acc & 0xffff)
	return ^uint16(acc)
}

// Checksum returns the Internet checksum (RFC 1071) of b: the complement
// of the one's-complement sum of its 16-bit words. Computed over a header
// whose checksum field holds the right value, it returns 0.
func Checksum(b []byte) uint16 { return finish(sum(0, b)) }

// pseudoSum is the running sum of the IPv4 pseudo-header for a UDP
// datagram of udpLen bytes.
func pseudoSum(src, dst [4]byte, udpLen uint16) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) +
		ProtocolUDP + uint64(udpLen)
}

// UDPChecksum returns the checksum to put in the header of the UDP datagram
// udp (header and payload, with the checksum field zero) sent from src to
// dst. A computed 0 is returned as 0xffff, because 0 on the wire means
// "no checksum".
func UDPChecksum(src, dst [4]byte, udp []byte) uint16 {
	c := finish(sum(pseudoSum(src, dst, uint16(len(udp))), udp))
	if c == 0 {
		return 0xffff
	}
	return c
}

// UDPChecksumValid reports whether the frame's UDP checksum verifies over
// the pseudo-header, header and payload, or is 0 (none). DecodeUDP4 does not
// check it, because frames a local stack hands to a packet socket may carry
// a checksum that offload hardware has not filled in yet.
func (f *Frame) UDPChecksumValid() bool {
	if f.UDP.Checksum == 0 {
		return true
	}
	acc := pseudoSum(f.IP.Src, f.IP.Dst, f.UDP.Length)
	acc += uint64(f.UDP.SrcPort) + uint64(f.UDP.DstPort) + uint64(f.UDP.Length) + uint64(f.UDP.Checksum)
	return finish(sum(acc, f.Payload)) == 0
}
