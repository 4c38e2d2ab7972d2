package dhcp

import (
	"encoding/binary"
	"strconv"
)

// Offsets and sizes of the fixed BOOTP header (RFC 951, RFC 2131 section 2).
const (
	offOp      = 0
	offHType   = 1
	offHLen    = 2
	offHops    = 3
	offXID     = 4
	offSecs    = 8
	offFlags   = 10
	offCIAddr  = 12
	offYIAddr  = 16
	offSIAddr  = 20
	offGIAddr  = 24
	offCHAddr  = 28
	offSName   = 44
	offFile    = 108
	offCookie  = 236
	offOptions = 240

	lenCHAddr = 16
	lenSName  = 64
	lenFile   = 128

	// HeaderLen is the size of the fixed BOOTP header plus the magic cookie:
	// the shortest message Decode accepts.
	HeaderLen = offOptions
	// MinBOOTPSize is the smallest BOOTP message a relay or client must
	// accept (RFC 1542); Builder pads replies to it.
	MinBOOTPSize = 300
	// MaxCHAddrLen is the largest hardware address length (hlen) accepted.
	MaxCHAddrLen = lenCHAddr
	// MaxLongOptionBytes bounds the total size of options that are split
	// over several instances (RFC 3396) and so must be joined in a Packet's
	// own scratch space.
	MaxLongOptionBytes = 2048
	// maxPacketLen keeps offsets inside uint32 arithmetic well away from overflow.
	maxPacketLen = 1 << 20
)

// Magic is the DHCP magic cookie 99.130.83.99 that follows the BOOTP header.
var Magic = [4]byte{99, 130, 83, 99}

const magicWord = 99<<24 | 130<<16 | 83<<8 | 99

// BOOTP op codes.
const (
	OpRequest uint8 = 1
	OpReply   uint8 = 2
)

// FlagBroadcast is the broadcast bit of the BOOTP flags field.
const FlagBroadcast uint16 = 0x8000

// Area says where an option instance sits: in the options field proper, or
// in the file or sname header fields borrowed through option overload (52).
type Area uint8

const (
	AreaOptions Area = iota
	AreaFile
	AreaSName
)

// String names the area.
func (a Area) String() string {
	switch a {
	case AreaOptions:
		return "options"
	case AreaFile:
		return "file"
	case AreaSName:
		return "sname"
	}
	return "area(" + strconv.Itoa(int(a)) + ")"
}

// Overload values of option 52.
const (
	OverloadFile  uint8 = 1
	OverloadSName uint8 = 2
	OverloadBoth  uint8 = 3
)

// DecodeError reports malformed input: which field was wrong, at which byte
// offset of the message, and why.
type DecodeError struct {
	Offset int    // byte offset in the message where the problem starts
	Field  string // "message", "hlen", "magic cookie", "option", "option overload", ...
	Code   int    // option code for option errors, -1 otherwise
	Reason string // what was wrong
}

func (e *DecodeError) Error() string {
	s := "dhcp: " + e.Field
	if e.Code >= 0 {
		s += " " + strconv.Itoa(e.Code)
	}
	return s + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Reasons used in DecodeError.
const (
	ReasonTruncatedHeader  = "message shorter than the 240-byte BOOTP header and magic cookie"
	ReasonTooLong          = "message longer than 1 MiB"
	ReasonHLen             = "hardware address length greater than 16"
	ReasonCookie           = "magic cookie is not 99.130.83.99"
	ReasonTruncatedOption  = "option length byte missing"
	ReasonOptionOverrun    = "option data runs past the end of its area"
	ReasonOverloadValue    = "option overload (52) must be one byte of value 1, 2 or 3"
	ReasonLongOptionsSpace = "options split over several instances exceed 2048 bytes in total"
)

// optEntry records every instance of one option code seen by Decode.
type optEntry struct {
	code  uint8
	count uint32 // number of instances
	off   uint32 // offset of the value: in raw (one instance) or in long (joined)
	total uint32 // length of the value: summed over all instances
}

// Packet is a decoded BOOTP/DHCP message. Decode fills it; it aliases the
// buffer passed to Decode, which must stay unchanged while the Packet is in
// use. A Packet is large (it keeps an index of option codes and scratch
// space for joined long options) and is meant to be reused: keep one per
// receive loop and pass it by pointer. Its methods do not modify it and are
// safe for concurrent readers.
type Packet struct {
	Op     uint8
	HType  uint8
	HLen   uint8 // hardware address length, at most 16
	Hops   uint8
	XID    uint32
	Secs   uint16
	Flags  uint16
	CIAddr [4]byte
	YIAddr [4]byte
	SIAddr [4]byte
	GIAddr [4]byte
	CHAddr [16]byte

	raw      []byte
	overload uint8
	hasEnd   bool
	ndense   int
	err      DecodeError
	vc       VendorClass // last VendorClass result (see VendorClass)
	mid      MachineID   // last ClientMachineID result

	// sparse/dense set of option codes: idx[code] is valid when it is below
	// ndense and dense[idx[code]].code == code. No clearing between decodes.
	idx   [256]uint8
	dense [256]optEntry
	long  [MaxLongOptionBytes]byte
}

// Decode parses msg into p. p aliases msg afterwards. Decode does not
// allocate: on failure it returns a *DecodeError that lives inside p and is
// only valid until the next Decode into p (copy it to keep it longer).
func (p *Packet) Decode(msg []byte) error {
	p.raw = nil
	p.ndense = 0
	p.overload = 0
	p.hasEnd = false
	if len(msg) < HeaderLen {
		return p.fail(len(msg), "message", -1, ReasonTruncatedHeader)
	}
	if len(msg) > maxPacketLen {
		return p.fail(maxPacketLen, "message", -1, ReasonTooLong)
	}
	if int(msg[offHLen]) > MaxCHAddrLen {
		return p.fail(offHLen, "hlen", -1, ReasonHLen)
	}
	if binary.BigEndian.Uint32(msg[offCookie:]) != magicWord {
		return p.fail(offCookie, "magic cookie", -1, ReasonCookie)
	}
	p.Op = msg[offOp]
	p.HType = msg[offHType]
	p.HLen = msg[offHLen]
	p.Hops = msg[offHops]
	p.XID = binary.BigEndian.Uint32(msg[offXID:])
	p.Secs = binary.BigEndian.Uint16(msg[offSecs:])
	p.Flags = binary.BigEndian.Uint16(msg[offFlags:])
	p.CIAddr = [4]byte(msg[offCIAddr : offCIAddr+4])
	p.YIAddr = [4]byte(msg[offYIAddr : offYIAddr+4])
	p.SIAddr = [4]byte(msg[offSIAddr : offSIAddr+4])
	p.GIAddr = [4]byte(msg[offGIAddr : offGIAddr+4])
	p.CHAddr = [16]byte(msg[offCHAddr : offCHAddr+16])

	split := false
	end, s, err := p.scan(msg, offOptions, len(msg))
	if err != nil {
		return err
	}
	p.hasEnd = end
	split = split || s
	if i, ok := p.entry(OptOverload); ok {
		e := &p.dense[i]
		// The length is checked before the value is read: an empty
		// option 52 can be the last bytes of the message.
		if e.count != 1 || e.total != 1 || msg[e.off] < 1 || msg[e.off] > 3 {
			return p.fail(int(e.off)-2, "option overload", int(OptOverload), ReasonOverloadValue)
		}
		v := msg[e.off]
		p.overload = v
		if v&OverloadFile != 0 {
			if _, s, err = p.scan(msg, offFile, offFile+lenFile); err != nil {
				return err
			}
			split = split || s
		}
		if v&OverloadSName != 0 {
			if _, s, err = p.scan(msg, offSName, offSName+lenSName); err != nil {
				return err
			}
			split = split || s
		}
	}
	p.raw = msg
	if split {
		if err := p.joinLong(); err != nil {
			p.raw = nil
			return err
		}
	}
	return nil
}

func (p *Packet) fail(off int, field string, code int, reason string) error {
	p.err = DecodeError{Offset: off, Field: field, Code: code, Reason: reason}
	p.raw = nil
	p.ndense = 0
	return &p.err
}

// scan walks one option area [start, limit), indexing every instance. It
// reports whether an End option was seen and whether any code repeated.
func (p *Packet) scan(msg []byte, start, limit int) (end, split bool, err error) {
	msg = msg[:limit]
	nd := p.ndense
	i := start
	for i < len(msg) {
		c := msg[i]
		if c == OptPad {
			i++
			continue
		}
		if c == OptEnd {
			end = true
			break
		}
		if i+1 >= len(msg) {
			return false, false, p.fail(i, "option", int(c), ReasonTruncatedOption)
		}
		n := int(msg[i+1])
		next := i + 2 + n
		if next > len(msg) {
			return false, false, p.fail(i, "option", int(c), ReasonOptionOverrun)
		}
		k := int(p.idx[c])
		if e := &p.dense[k]; k < nd && e.code == c {
			e.count++
			e.total += uint32(n)
			split = true
		} else {
			p.idx[c] = uint8(nd)
			e = &p.dense[nd&0xff]
			e.code, e.off, e.count, e.total = c, uint32(i+2), 1, uint32(n)
			nd++
		}
		i = next
	}
	p.ndense = nd
	return end, split, nil
}

// joinLong concatenates the instances of every repeated option code into
// p.long, in wire order (options field, then file, then sname: RFC 3396).
func (p *Packet) joinLong() error {
	used := uint32(0)
	for k := 0; k < p.ndense; k++ {
		e := &p.dense[k]
		if e.count < 2 {
			continue
		}
		if used+e.total > MaxLongOptionBytes {
			return p.fail(int(e.off)-2, "option", int(e.code), ReasonLongOptionsSpace)
		}
		e.off = used
		dst := p.long[used:used]
		it := p.Options()
		for it.Next() {
			if it.Code() == e.code {
				dst = append(dst, it.Data()...)
			}
		}
		used += e.total
	}
	return nil
}

func (p *Packet) entry(code uint8) (int, bool) {
	k := int(p.idx[code])
	if k < p.ndense && p.dense[k].code == code {
		return k, true
	}
	return 0, false
}

// Bytes returns the message p was decoded from.
func (p *Packet) Bytes() []byte { return p.raw }

// HardwareAddr returns the client hardware address: the first hlen bytes of chaddr.
func (p *Packet) HardwareAddr() []byte {
	if p.raw == nil {
		return nil
	}
	return p.raw[offCHAddr : offCHAddr+int(p.HLen)]
}

// Broadcast reports whether the client asked for broadcast replies.
func (p *Packet) Broadcast() bool { return p.Flags&FlagBroadcast != 0 }

// SNameField returns the raw 64-byte sname field (which holds options when
// overloaded).
func (p *Packet) SNameField() []byte {
	if p.raw == nil {
		return nil
	}
	return p.raw[offSName : offSName+lenSName]
}

// FileField returns the raw 128-byte file field (which holds options when
// overloaded).
func (p *Packet) FileField() []byte {
	if p.raw == nil {
		return nil
	}
	return p.raw[offFile : offFile+lenFile]
}

// ServerName returns the sname field up to its first NUL, or nil when the
// field is empty or carries options (overload).
func (p *Packet) ServerName() []byte {
	if p.overload&OverloadSName != 0 {
		return nil
	}
	return cString(p.SNameField())
}

// BootFile returns the file field up to its first NUL, or nil when the field
// is empty or carries options (overload).
func (p *Packet) BootFile() []byte {
	if p.overload&OverloadFile != 0 {
		return nil
	}
	return cString(p.FileField())
}

// Overload returns the value of option 52 (0 when sname and file carry no options).
func (p *Packet) Overload() uint8 { return p.overload }

// HasEnd reports whether the options field was terminated by an End option.
func (p *Packet) HasEnd() bool { return p.hasEnd }

func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if len(b) == 0 {
		return nil
	}
	return b
}
