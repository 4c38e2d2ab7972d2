package tftp

import (
	"encoding/binary"
	"strconv"
)

// Opcode is the first 16-bit field of every TFTP packet.
type Opcode uint16

// Opcodes (RFC 1350, OACK from RFC 2347).
const (
	OpRRQ   Opcode = 1
	OpWRQ   Opcode = 2
	OpDATA  Opcode = 3
	OpACK   Opcode = 4
	OpERROR Opcode = 5
	OpOACK  Opcode = 6
)

func (o Opcode) String() string {
	switch o {
	case OpRRQ:
		return "RRQ"
	case OpWRQ:
		return "WRQ"
	case OpDATA:
		return "DATA"
	case OpACK:
		return "ACK"
	case OpERROR:
		return "ERROR"
	case OpOACK:
		return "OACK"
	}
	return "opcode(" + strconv.Itoa(int(o)) + ")"
}

// ErrorCode is the code of an ERROR packet (RFC 1350, 8 from RFC 2347).
type ErrorCode uint16

// Error codes.
const (
	ErrCodeNotDefined        ErrorCode = 0 // see the message
	ErrCodeFileNotFound      ErrorCode = 1
	ErrCodeAccessViolation   ErrorCode = 2
	ErrCodeDiskFull          ErrorCode = 3
	ErrCodeIllegalOperation  ErrorCode = 4
	ErrCodeUnknownTID        ErrorCode = 5
	ErrCodeFileExists        ErrorCode = 6
	ErrCodeNoSuchUser        ErrorCode = 7
	ErrCodeOptionNegotiation ErrorCode = 8
)

var errorCodeText = [...]string{
	"not defined",
	"file not found",
	"access violation",
	"disk full or allocation exceeded",
	"illegal TFTP operation",
	"unknown transfer ID",
	"file already exists",
	"no such user",
	"option negotiation failed",
}

func (c ErrorCode) String() string {
	if int(c) < len(errorCodeText) {
		return errorCodeText[c]
	}
	return "error code " + strconv.Itoa(int(c))
}

// Limits on the variable-length fields. RFC 2347 limits a request to 512
// bytes; these bounds keep every field small while accepting real clients.
const (
	MaxFilenameLen    = 512 // bytes, without the NUL
	MaxOptionNameLen  = 64
	MaxOptionValueLen = 255
	MaxErrorMsgLen    = 512
	MaxExtraOptions   = 8 // unknown options kept per request/OACK
)

// Option value ranges from the RFCs (the codec parses any non-negative
// decimal; servers use these to clamp or refuse).
const (
	MinBlksize     = 8     // RFC 2348
	MaxBlksize     = 65464 // RFC 2348
	DefaultBlksize = 512   // RFC 1350
	MinTimeout     = 1     // RFC 2349, seconds
	MaxTimeout     = 255
	MinWindowsize  = 1 // RFC 7440
	MaxWindowsize  = 65535
)

// Mode is the transfer mode of a request.
type Mode uint8

// Transfer modes (RFC 1350). Compared case-insensitively on the wire.
const (
	ModeUnknown Mode = iota
	ModeNetascii
	ModeOctet
	ModeMail
)

func (m Mode) String() string {
	switch m {
	case ModeNetascii:
		return "netascii"
	case ModeOctet:
		return "octet"
	case ModeMail:
		return "mail"
	}
	return "unknown"
}

// PacketOpcode returns the opcode of b without validating the rest.
//
// Its error is the bare Kind (ErrTruncated or ErrBadOpcode, offset 0 or
// len(b) is implied), which costs no allocation: servers call it on every
// packet they receive, hostile ones included.
func PacketOpcode(b []byte) (Opcode, error) {
	op, f := opcodeOf(b)
	if f.failed() {
		return op, f.Kind
	}
	return op, nil
}

func opcodeOf(b []byte) (Opcode, DecodeError) {
	if len(b) < 2 {
		return 0, fault(KindTruncated, len(b))
	}
	op := Opcode(binary.BigEndian.Uint16(b))
	if op < OpRRQ || op > OpOACK {
		return op, fault(KindBadOpcode, 0)
	}
	return op, DecodeError{}
}

// cstring returns the NUL-terminated string starting at b[off], bounded to
// max bytes, and the offset after its NUL; on failure the DecodeError's
// Kind is set.
func cstring(b []byte, off, max int) ([]byte, int, DecodeError) {
	for i := off; i < len(b); i++ {
		if b[i] == 0 {
			return b[off:i], i + 1, DecodeError{}
		}
		if i-off >= max {
			return nil, off, fault(KindTooLong, off)
		}
	}
	return nil, off, fault(KindNotTerminated, off)
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecimal parses a non-negative decimal number of at most 18 digits
// (so it cannot overflow int64).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseMode(b []byte) Mode {
	switch {
	case equalFold(b, "octet"):
		return ModeOctet
	case equalFold(b, "netascii"):
		return ModeNetascii
	case equalFold(b, "mail"):
		return ModeMail
	}
	return ModeUnknown
}

// ParseData decodes a DATA packet. Payload aliases b.
func ParseData(b []byte) (Data, error) {
	if err := expectOpcode(b, OpDATA, 4); err != nil {
		return Data{}, err
	}
	return Data{Block: binary.BigEndian.Uint16(b[2:]), Payload: b[4:]}, nil
}

// Data is a decoded DATA packet.
type Data struct {
	Block   uint16
	Payload []byte // aliases the packet
}

// ParseAck decodes an ACK packet and returns its block number.
func ParseAck(b []byte) (uint16, error) {
	if err := expectOpcode(b, OpACK, 4); err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, decodeErr(KindTrailingGarbage, 4)
	}
	return binary.BigEndian.Uint16(b[2:]), nil
}

// ErrorPacket is a decoded ERROR packet.
type ErrorPacket struct {
	Code    ErrorCode
	Message []byte // aliases the packet, without the NUL
}

// ParseError decodes an ERROR packet. The message must be NUL-terminated.
func ParseError(b []byte) (ErrorPacket, error) {
	if err := expectOpcode(b, OpERROR, 5); err != nil {
		return ErrorPacket{}, err
	}
	msg, end, f := cstring(b, 4, MaxErrorMsgLen)
	if f.failed() {
		return ErrorPacket{}, f.err()
	}
	if end != len(b) {
		return ErrorPacket{}, decodeErr(KindTrailingGarbage, end)
	}
	return ErrorPacket{Code: ErrorCode(binary.BigEndian.Uint16(b[2:])), Message: msg}, nil
}

func expectOpcode(b []byte, want Opcode, minLen int) error {
	if len(b) < 2 {
		return decodeErr(KindTruncated, len(b))
	}
	if Opcode(binary.BigEndian.Uint16(b)) != want {
		return decodeErr(KindBadOpcode, 0)
	}
	if len(b) < minLen {
		return decodeErr(KindTruncated, len(b))
	}
	return nil
}

// AppendData appends a DATA packet to dst.
func AppendData(dst []byte, block uint16, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpDATA))
	dst = binary.BigEndian.AppendUint16(dst, block)
	return append(dst, payload...)
}

// PutDataHeader writes the 4-byte DATA header for block into dst[:4], for
// senders that read file data straight into dst[4:].
func PutDataHeader(dst []byte, block uint16) {
	_ = dst[3]
	binary.BigEndian.PutUint16(dst, uint16(OpDATA))
	binary.BigEndian.PutUint16(dst[2:], block)
}

// AppendAck appends an ACK packet to dst.
func AppendAck(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpACK))
	return binary.BigEndian.AppendUint16(dst, block)
}

// AppendError appends an ERROR packet to dst. The message is cut at its
// first NUL byte and at MaxErrorMsgLen so the packet is always well formed.
func AppendError(dst []byte, code ErrorCode, msg string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpERROR))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	if len(msg) > MaxErrorMsgLen {
		msg = msg[:MaxErrorMsgLen]
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] == 0 {
			msg = msg[:i]
			break
		}
	}
	dst = append(dst, msg...)
	return append(dst, 0)
}
