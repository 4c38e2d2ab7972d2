package frame

import "strconv"

// Reason says what is wrong with a frame or with an encode request. Every
// Reason is an error, so errors.Is(err, ErrTruncated) works on the *Error
// values DecodeUDP4 returns; encoders return a bare Reason.
type Reason uint8

const (
	// ErrTruncated: the buffer ends inside a header, or before the length
	// a header claims.
	ErrTruncated Reason = iota + 1
	// ErrNotIPv4: the EtherType (after any VLAN tag) is not IPv4.
	ErrNotIPv4
	// ErrIPVersion: the IPv4 version field is not 4.
	ErrIPVersion
	// ErrIPHeaderLen: the IHL field is below 5 words.
	ErrIPHeaderLen
	// ErrIPTotalLen: the IPv4 total length is shorter than its header.
	ErrIPTotalLen
	// ErrIPChecksum: the IPv4 header checksum does not verify.
	ErrIPChecksum
	// ErrFragment: the datagram is an IPv4 fragment; the frame's IP
	// header and Payload (the fragment data) are filled in, UDP is not.
	ErrFragment
	// ErrNotUDP: the IPv4 protocol is not UDP.
	ErrNotUDP
	// ErrUDPLength: the UDP length is below 8 or beyond the IPv4 payload.
	ErrUDPLength
	// ErrUDPChecksum: the UDP checksum does not verify.
	ErrUDPChecksum
	// ErrIPOptions: IPv4 options to encode are not a multiple of 4 bytes
	// or longer than 40.
	ErrIPOptions
	// ErrBufferTooSmall: the destination buffer cannot hold the frame.
	ErrBufferTooSmall
	// ErrPayloadTooLarge: the payload does not fit an IPv4 datagram.
	ErrPayloadTooLarge
	// ErrMode: the encode Mode is not one this package defines.
	ErrMode
)

var reasonText = [...]string{
	ErrTruncated:       "truncated",
	ErrNotIPv4:         "not IPv4",
	ErrIPVersion:       "IP version is not 4",
	ErrIPHeaderLen:     "IPv4 header length below 20",
	ErrIPTotalLen:      "IPv4 total length shorter than header",
	ErrIPChecksum:      "bad IPv4 header checksum",
	ErrFragment:        "IPv4 fragment",
	ErrNotUDP:          "not UDP",
	ErrUDPLength:       "bad UDP length",
	ErrUDPChecksum:     "bad UDP checksum",
	ErrIPOptions:       "IPv4 options not a multiple of 4 or longer than 40 bytes",
	ErrBufferTooSmall:  "buffer too small",
	ErrPayloadTooLarge: "payload too large for IPv4",
	ErrMode:            "unknown encode mode",
}

// Error describes the reason.
func (r Reason) Error() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return "frame: " + reasonText[r]
	}
	return "frame: reason " + strconv.Itoa(int(r))
}

// Layer names the header in which a decode error was found.
type Layer uint8

// Layers of a frame, outermost first.
const (
	LayerEthernet Layer = iota + 1
	LayerVLAN
	LayerIPv4
	LayerUDP
)

// String names the layer.
func (l Layer) String() string {
	switch l {
	case LayerEthernet:
		return "ethernet"
	case LayerVLAN:
		return "802.1q"
	case LayerIPv4:
		return "ipv4"
	case LayerUDP:
		return "udp"
	}
	return "layer(" + strconv.Itoa(int(l)) + ")"
}

// Error is a decode error: which layer, at which byte offset of the frame
// (the start of the header or field at fault), and why.
//
// The *Error that DecodeUDP4 returns points into the Frame it was decoding
// (so that failing costs no allocation): it stays valid until that Frame is
// decoded into again. Copy the Error value to keep it longer.
type Error struct {
	Layer  Layer
	Offset int
	Reason Reason
}

// Error formats the error, e.g. "frame: ipv4 at offset 14: truncated".
func (e *Error) Error() string {
	return "frame: " + e.Layer.String() + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason.Error()[len("frame: "):]
}

// Unwrap returns the Reason, for errors.Is.
func (e *Error) Unwrap() error { return e.Reason }

// fail records a decode error in f and returns it.
func (f *Frame) fail(layer Layer, offset int, reason Reason) error {
	f.err = Error{Layer: layer, Offset: offset, Reason: reason}
	return &f.err
}
