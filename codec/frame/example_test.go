package frame_test

import (
	"fmt"

	"github.com/peerboot/peerboot/codec/frame"
)

// A reply to a client that has no IP address yet: build the payload at
// offset HeaderLen, then write the headers in front of it.
func ExamplePutHeaders() {
	buf := make([]byte, 1514)
	n := copy(buf[frame.HeaderLen:], "reply payload")
	h := frame.Header{
		Eth: frame.Ethernet{Dst: frame.MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}, Src: frame.MAC{2, 0, 0, 0, 0, 1}},
		IP:  frame.IPv4{TTL: 64, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{255, 255, 255, 255}},
		UDP: frame.UDP{SrcPort: 67, DstPort: 68},
	}
	frameLen, err := frame.PutHeaders(buf, &h, n)
	if err != nil {
		panic(err)
	}

	var f frame.Frame
	err = frame.DecodeUDP4(buf[:frameLen], &f)
	fmt.Println(frameLen, err, f.Eth.Dst, f.IP.DstAddr(), f.UDP.DstPort, f.UDPChecksumValid(), string(f.Payload))
	// Output: 55 <nil> 52:54:00:12:34:56 255.255.255.255 68 true reply payload
}
