package dhcp

// Option codes this package knows by name (RFC 2132, RFC 3046, RFC 4578, PXE 2.1).
const (
	OptPad              uint8 = 0
	OptHostName         uint8 = 12
	OptVendorSpecific   uint8 = 43 // PXE vendor sub-options when the vendor class is PXEClient
	OptRequestedIP      uint8 = 50
	OptOverload         uint8 = 52
	OptMessageType      uint8 = 53
	OptServerID         uint8 = 54
	OptParamRequestList uint8 = 55
	OptMaxMessageSize   uint8 = 57
	OptVendorClass      uint8 = 60
	OptClientID         uint8 = 61
	OptTFTPServerName   uint8 = 66
	OptBootFileName     uint8 = 67
	OptUserClass        uint8 = 77
	OptRelayAgentInfo   uint8 = 82
	OptClientArch       uint8 = 93
	OptClientNII        uint8 = 94
	OptClientMachineID  uint8 = 97
	OptIPXE             uint8 = 175
	OptEnd              uint8 = 255
)

// OptionIter walks the option instances of a Packet in wire order: the
// options field, then (with overload) the file field, then the sname field.
// Pad and End are skipped. Use it as:
//
//	it := p.Options()
//	for it.Next() { use(it.Code(), it.Data()) }
type OptionIter struct {
	raw   []byte
	ovl   uint8
	area  Area
	i     int
	limit int
	code  uint8
	data  []byte
	cur   Area
}

// Options returns an iterator over p's option instances in wire order.
func (p *Packet) Options() OptionIter {
	return OptionIter{raw: p.raw, ovl: p.overload, area: AreaOptions, i: offOptions, limit: len(p.raw)}
}

// Next advances to the next option instance and reports whether there is one.
func (it *OptionIter) Next() bool {
	for {
		if it.i < it.limit && it.raw != nil {
			c := it.raw[it.i]
			switch {
			case c == OptPad:
				it.i++
				continue
			case c == OptEnd:
				it.i = it.limit
				continue
			}
			if it.i+1 >= it.limit {
				it.i = it.limit
				continue
			}
			n := int(it.raw[it.i+1])
			if it.i+2+n > it.limit {
				it.i = it.limit
				continue
			}
			it.code = c
			it.data = it.raw[it.i+2 : it.i+2+n : it.i+2+n]
			it.cur = it.area
			it.i += 2 + n
			return true
		}
		// move to the next area
		switch it.area {
		case AreaOptions:
			it.area = AreaFile
			if it.ovl&OverloadFile != 0 {
				it.i, it.limit = offFile, offFile+lenFile
			}
		case AreaFile:
			it.area = AreaSName
			if it.ovl&OverloadSName != 0 {
				it.i, it.limit = offSName, offSName+lenSName
			}
		default:
			return false
		}
	}
}

// Code returns the current option's code.
func (it *OptionIter) Code() uint8 { return it.code }

// Data returns the current instance's data (aliasing the message).
func (it *OptionIter) Data() []byte { return it.data }

// Area returns where the current instance sits.
func (it *OptionIter) Area() Area { return it.cur }

// Lookup returns the value of option code: the data of its single instance,
// or, when the option is split over several instances (RFC 3396), their
// concatenation in wire order (held inside p). ok is false when absent.
func (p *Packet) Lookup(code uint8) (data []byte, ok bool) {
	k := int(p.idx[code])
	e := &p.dense[k]
	if k >= p.ndense || e.code != code {
		return nil, false
	}
	if e.count > 1 {
		return p.long[e.off : e.off+e.total : e.off+e.total], true
	}
	return p.raw[e.off : e.off+e.total : e.off+e.total], true
}

// Has reports whether option code is present.
func (p *Packet) Has(code uint8) bool {
	_, ok := p.entry(code)
	return ok
}

// Instances returns how many instances of option code the message carries
// (more than one means an RFC 3396 long option).
func (p *Packet) Instances(code uint8) int {
	k, ok := p.entry(code)
	if !ok {
		return 0
	}
	return int(p.dense[k].count)
}

// NumOptions returns how many distinct option codes the message carries.
func (p *Packet) NumOptions() int { return p.ndense }

// SubOptions is the value of an encapsulating option (43 vendor specific, 82
// relay agent information, 175 iPXE): a sequence of code/length/data
// sub-options, with 0 as pad and 255 as end.
type SubOptions []byte

// SubOptionIter walks sub-options; it stops at End or at the first
// malformed sub-option (see Err).
type SubOptionIter struct {
	b    []byte
	i    int
	code uint8
	data []byte
	bad  bool
}

// Iter returns an iterator over s.
func (s SubOptions) Iter() SubOptionIter { return SubOptionIter{b: s} }

// Next advances to the next sub-option.
func (it *SubOptionIter) Next() bool {
	for it.i < len(it.b) {
		c := it.b[it.i]
		if c == OptPad {
			it.i++
			continue
		}
		if c == OptEnd {
			it.i = len(it.b)
			return false
		}
		if it.i+1 >= len(it.b) || it.i+2+int(it.b[it.i+1]) > len(it.b) {
			it.bad = true
			it.i = len(it.b)
			return false
		}
		n := int(it.b[it.i+1])
		it.code = c
		it.data = it.b[it.i+2 : it.i+2+n : it.i+2+n]
		it.i += 2 + n
		return true
	}
	return false
}

// Code returns the current sub-option's code.
func (it *SubOptionIter) Code() uint8 { return it.code }

// Data returns the current sub-option's data.
func (it *SubOptionIter) Data() []byte { return it.data }

// Malformed reports whether iteration stopped at a truncated sub-option.
func (it *SubOptionIter) Malformed() bool { return it.bad }

// Lookup returns the first sub-option with the given code.
func (s SubOptions) Lookup(code uint8) ([]byte, bool) {
	it := s.Iter()
	for it.Next() {
		if it.code == code {
			return it.data, true
		}
	}
	return nil, false
}

// Valid reports whether every sub-option is well formed (a trailing End is optional).
func (s SubOptions) Valid() bool {
	it := s.Iter()
	for it.Next() {
	}
	return !it.bad
}
