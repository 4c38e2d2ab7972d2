package tftp

import (
	"encoding/binary"
	"strconv"
)

// OptionSet says which of the known options are present.
type OptionSet uint8

// Known options.
const (
	OptBlksize    OptionSet = 1 << iota // RFC 2348
	OptTsize                            // RFC 2349
	OptTimeout                          // RFC 2349
	OptWindowsize                       // RFC 7440
)

// Option is one name/value pair as it appears on the wire.
type Option struct {
	Name, Value []byte
}

// Options are the options of a request or an OACK. The known options are
// parsed into numbers; any other option is kept, in wire order, in Extra.
// The zero value has no options.
type Options struct {
	Present    OptionSet
	Blksize    int64
	Tsize      int64
	Timeout    int64 // seconds
	Windowsize int64
	extra      [MaxExtraOptions]Option
	nextra     int
}

// Has reports whether option o is present.
func (o *Options) Has(opt OptionSet) bool { return o.Present&opt != 0 }

// SetBlksize, SetTsize, SetTimeout and SetWindowsize set a known option.
func (o *Options) SetBlksize(v int64)    { o.Blksize = v; o.Present |= OptBlksize }
func (o *Options) SetTsize(v int64)      { o.Tsize = v; o.Present |= OptTsize }
func (o *Options) SetTimeout(v int64)    { o.Timeout = v; o.Present |= OptTimeout }
func (o *Options) SetWindowsize(v int64) { o.Windowsize = v; o.Present |= OptWindowsize }

// Extra returns the unknown options in wire order. The slice aliases o.
func (o *Options) Extra() []Option { return o.extra[:o.nextra] }

// AddExtra appends an option that the codec does not interpret. Names and
// values are validated like decoded ones; the slices are kept, not copied.
func (o *Options) AddExtra(name, value []byte) error {
	switch {
	case len(name) == 0:
		return ErrEmptyOptionName
	case len(name) > MaxOptionNameLen || len(value) > MaxOptionValueLen:
		return ErrTooLong
	case hasNUL(name) || hasNUL(value):
		return ErrNotTerminated
	case knownOption(name) != 0:
		return ErrDuplicateOption
	case o.nextra == MaxExtraOptions:
		return ErrTooManyOptions
	}
	for _, e := range o.Extra() {
		if equalFoldBytes(e.Name, name) {
			return ErrDuplicateOption
		}
	}
	o.extra[o.nextra] = Option{Name: name, Value: value}
	o.nextra++
	return nil
}

// Reset removes every option.
func (o *Options) Reset() { *o = Options{} }

func hasNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func knownOption(name []byte) OptionSet {
	switch {
	case equalFold(name, "blksize"):
		return OptBlksize
	case equalFold(name, "tsize"):
		return OptTsize
	case equalFold(name, "timeout"):
		return OptTimeout
	case equalFold(name, "windowsize"):
		return OptWindowsize
	}
	return 0
}

// parse decodes name/value pairs from b[off:] to the end of b.
// Trailing NUL padding after the last pair is accepted (some ROMs pad).
func (o *Options) parse(b []byte, off int) DecodeError {
	*o = Options{}
	for off < len(b) {
		if b[off] == 0 && allZero(b[off:]) {
			return DecodeError{}
		}
		start := off
		name, next, f := cstring(b, off, MaxOptionNameLen)
		if f.failed() {
			return f
		}
		if len(name) == 0 {
			return fault(KindEmptyOptionName, start)
		}
		vstart := next
		value, next, f := cstring(b, next, MaxOptionValueLen)
		if f.failed() {
			return f
		}
		off = next
		known := knownOption(name)
		if known == 0 {
			if err := o.AddExtra(name, value); err != nil {
				return fault(err.(Kind), start)
			}
			continue
		}
		if o.Present&known != 0 {
			return fault(KindDuplicateOption, start)
		}
		v, ok := parseDecimal(value)
		if !ok {
			return fault(KindBadOptionValue, vstart)
		}
		switch known {
		case OptBlksize:
			o.SetBlksize(v)
		case OptTsize:
			o.SetTsize(v)
		case OptTimeout:
			o.SetTimeout(v)
		case OptWindowsize:
			o.SetWindowsize(v)
		}
	}
	return DecodeError{}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendTo appends the options as NUL-terminated pairs: the known ones in
// the order blksize, tsize, timeout, windowsize, then the extra ones.
func (o *Options) appendTo(dst []byte) []byte {
	if o.Has(OptBlksize) {
		dst = appendNumOption(dst, "blksize", o.Blksize)
	}
	if o.Has(OptTsize) {
		dst = appendNumOption(dst, "tsize", o.Tsize)
	}
	if o.Has(OptTimeout) {
		dst = appendNumOption(dst, "timeout", o.Timeout)
	}
	if o.Has(OptWindowsize) {
		dst = appendNumOption(dst, "windowsize", o.Windowsize)
	}
	for _, e := range o.Extra() {
		dst = append(dst, e.Name...)
		dst = append(dst, 0)
		dst = append(dst, e.Value...)
		dst = append(dst, 0)
	}
	return dst
}

func (o *Options) validate() error {
	if (o.Has(OptBlksize) && o.Blksize < 0) || (o.Has(OptTsize) && o.Tsize < 0) ||
		(o.Has(OptTimeout) && o.Timeout < 0) || (o.Has(OptWindowsize) && o.Windowsize < 0) {
		return ErrBadOptionValue
	}
	return nil
}

func appendNumOption(dst []byte, name string, v int64) []byte {
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 0)
}

// Request is a decoded RRQ or WRQ. Filename, Mode and the option names and
// values alias the packet it was parsed from.
type Request struct {
	Opcode   Opcode // OpRRQ or OpWRQ
	Filename []byte
	Mode     Mode
	Options

	err DecodeError // what ParseRequest's error points at
}

// ParseRequest decodes an RRQ or WRQ into r, which it overwrites. It does
// not allocate, not even for a malformed packet: the *DecodeError it
// returns lives inside r and is valid until r is parsed into again.
func ParseRequest(b []byte, r *Request) error {
	op, f := opcodeOf(b)
	if f.failed() {
		return r.fail(f)
	}
	if op != OpRRQ && op != OpWRQ {
		return r.fail(fault(KindBadOpcode, 0))
	}
	name, off, f := cstring(b, 2, MaxFilenameLen)
	if f.failed() {
		return r.fail(f)
	}
	if len(name) == 0 {
		return r.fail(fault(KindEmptyFilename, 2))
	}
	modeOff := off
	mode, off, f := cstring(b, off, len("netascii"))
	if f.failed() {
		if f.Kind == KindTooLong {
			return r.fail(fault(KindBadMode, modeOff))
		}
		return r.fail(f)
	}
	m := parseMode(mode)
	if m == ModeUnknown {
		return r.fail(fault(KindBadMode, modeOff))
	}
	r.Opcode, r.Filename, r.Mode = op, name, m
	if f := r.Options.parse(b, off); f.failed() {
		return r.fail(f)
	}
	return nil
}

func (r *Request) fail(f DecodeError) error {
	r.err = f
	return &r.err
}

// AppendRequest appends an RRQ or WRQ for r to dst.
func AppendRequest(dst []byte, r *Request) ([]byte, error) {
	switch {
	case r.Opcode != OpRRQ && r.Opcode != OpWRQ:
		return dst, ErrBadOpcode
	case len(r.Filename) == 0:
		return dst, ErrEmptyFilename
	case len(r.Filename) > MaxFilenameLen:
		return dst, ErrTooLong
	case hasNUL(r.Filename):
		return dst, ErrNotTerminated
	case r.Mode == ModeUnknown || r.Mode > ModeMail:
		return dst, ErrBadMode
	}
	if err := r.Options.validate(); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Opcode))
	dst = append(dst, r.Filename...)
	dst = append(dst, 0)
	dst = append(dst, r.Mode.String()...)
	dst = append(dst, 0)
	return r.Options.appendTo(dst), nil
}

// ParseOACK decodes an OACK packet into o, which it overwrites.
func ParseOACK(b []byte, o *Options) error {
	if err := expectOpcode(b, OpOACK, 2); err != nil {
		return err
	}
	return o.parse(b, 2).err()
}

// AppendOACK appends an OACK carrying o to dst.
func AppendOACK(dst []byte, o *Options) ([]byte, error) {
	if err := o.validate(); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpOACK))
	return o.appendTo(dst), nil
}
