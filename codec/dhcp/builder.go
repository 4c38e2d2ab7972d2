package dhcp

import (
	"encoding/binary"
	"errors"
)

// Errors returned by Builder.Finish. They are plain values so that building
// never allocates.
var (
	ErrBufferTooSmall    = errors.New("dhcp: reply does not fit the buffer")
	ErrTooLargeForClient = errors.New("dhcp: reply exceeds the client's maximum message size (option 57)")
	ErrFieldTooLong      = errors.New("dhcp: value too long for its field (sname 63, file 127, sub-option 255 bytes)")
	ErrBadBuilderUse     = errors.New("dhcp: builder used out of order (Start first; BeginPXE/EndPXE pairs; no options after Finish)")
)

// Builder writes a BOOTP/DHCP message into a caller buffer without
// allocating. Call Start or StartReply, set header fields and add options in
// the order they should appear, then Finish. Errors are sticky: the first one
// is returned by Finish and later calls do nothing. Values longer than 255
// bytes are split over several instances (RFC 3396).
//
// A ProxyDHCP OFFER for a PXE DISCOVER req:
//
//	var b dhcp.Builder
//	b.StartReply(buf, req, dhcp.Offer)
//	b.AddServerID(myIP)
//	b.AddString(dhcp.OptVendorClass, "PXEClient")
//	b.EchoOption(req, dhcp.OptClientMachineID)
//	b.BeginPXE()
//	b.PXEDiscoveryControl(0x08)
//	b.EndPXE()
//	reply, err := b.Finish()
type Builder struct {
	buf      []byte
	n        int
	max      int // the receiver's limit
	lim      int // min(max, len(buf))
	err      error
	pxeStart int  // offset of the open option 43, or -1
	ok       bool // started, not finished, no error
}

// Start begins a message in dst with op BOOTREPLY, Ethernet hardware type,
// every other header field zero, the magic cookie and option 53 = t. maxSize
// is the largest message the receiver accepts (see Packet.MaxReplySize);
// values below 300 are raised to 300.
func (b *Builder) Start(dst []byte, t MessageType, maxSize int) {
	if maxSize < MinBOOTPSize {
		maxSize = MinBOOTPSize
	}
	*b = Builder{buf: dst, max: maxSize, lim: min(maxSize, len(dst)), pxeStart: -1, ok: true}
	if len(dst) < HeaderLen {
		b.setErr(ErrBufferTooSmall)
		return
	}
	clear(dst[:HeaderLen])
	dst[offOp] = OpReply
	dst[offHType] = 1
	dst[offHLen] = 6
	copy(dst[offCookie:], Magic[:])
	b.n = HeaderLen
	b.AddByte(OptMessageType, byte(t))
}

// StartReply begins a reply of type t to req: it copies htype, hlen, chaddr,
// xid, flags and giaddr from the request (and ciaddr for an ACK, RFC 2131
// table 3) and limits the size to what the client accepts (option 57).
func (b *Builder) StartReply(dst []byte, req *Packet, t MessageType) {
	b.Start(dst, t, req.MaxReplySize())
	if b.err != nil {
		return
	}
	dst[offHType] = req.HType
	dst[offHLen] = req.HLen
	binary.BigEndian.PutUint32(dst[offXID:], req.XID)
	binary.BigEndian.PutUint16(dst[offFlags:], req.Flags)
	copy(dst[offGIAddr:], req.GIAddr[:])
	copy(dst[offCHAddr:], req.CHAddr[:])
	if t == Ack {
		copy(dst[offCIAddr:], req.CIAddr[:])
	}
}

func (b *Builder) header() []byte {
	if b.ok {
		return b.buf
	}
	b.setErr(ErrBadBuilderUse)
	return nil
}

func (b *Builder) setErr(err error) {
	if b.err == nil {
		b.err = err
	}
	b.ok = false
}

// SetXID sets the transaction id.
func (b *Builder) SetXID(x uint32) {
	if h := b.header(); h != nil {
		binary.BigEndian.PutUint32(h[offXID:], x)
	}
}

// SetSecs sets the secs field.
func (b *Builder) SetSecs(s uint16) {
	if h := b.header(); h != nil {
		binary.BigEndian.PutUint16(h[offSecs:], s)
	}
}

// SetFlags sets the flags field.
func (b *Builder) SetFlags(f uint16) {
	if h := b.header(); h != nil {
		binary.BigEndian.PutUint16(h[offFlags:], f)
	}
}

// SetHops sets the hops field.
func (b *Builder) SetHops(n uint8) {
	if h := b.header(); h != nil {
		h[offHops] = n
	}
}

func (b *Builder) setAddr(off int, a [4]byte) {
	if h := b.header(); h != nil {
		copy(h[off:off+4], a[:])
	}
}

// SetCIAddr sets ciaddr.
func (b *Builder) SetCIAddr(a [4]byte) { b.setAddr(offCIAddr, a) }

// SetYIAddr sets yiaddr (zero in a ProxyDHCP reply).
func (b *Builder) SetYIAddr(a [4]byte) { b.setAddr(offYIAddr, a) }

// SetSIAddr sets siaddr, the next (TFTP) server.
func (b *Builder) SetSIAddr(a [4]byte) { b.setAddr(offSIAddr, a) }

// SetGIAddr sets giaddr.
func (b *Builder) SetGIAddr(a [4]byte) { b.setAddr(offGIAddr, a) }

// SetCHAddr sets htype, hlen and chaddr. addr must be at most 16 bytes.
func (b *Builder) SetCHAddr(htype uint8, addr []byte) {
	h := b.header()
	if h == nil {
		return
	}
	if len(addr) > lenCHAddr {
		b.setErr(ErrFieldTooLong)
		return
	}
	h[offHType] = htype
	h[offHLen] = byte(len(addr))
	clear(h[offCHAddr : offCHAddr+lenCHAddr])
	copy(h[offCHAddr:], addr)
}

func (b *Builder) setField(off, size int, s string) {
	h := b.header()
	if h == nil {
		return
	}
	if len(s) >= size {
		b.setErr(ErrFieldTooLong)
		return
	}
	clear(h[off : off+size])
	copy(h[off:], s)
}

// SetServerName sets the sname field (at most 63 bytes, NUL-terminated).
func (b *Builder) SetServerName(s string) { b.setField(offSName, lenSName, s) }

// SetBootFile sets the file field (at most 127 bytes, NUL-terminated).
func (b *Builder) SetBootFile(s string) { b.setField(offFile, lenFile, s) }

// room checks that k more bytes fit.
func (b *Builder) room(k int) bool {
	if b.ok && b.n+k <= b.lim {
		return true
	}
	return b.roomSlow(k)
}

func (b *Builder) roomSlow(k int) bool {
	if b.header() == nil {
		return false
	}
	if b.n+k > b.max {
		b.setErr(ErrTooLargeForClient)
		return false
	}
	if b.n+k > len(b.buf) {
		b.setErr(ErrBufferTooSmall)
		return false
	}
	return true
}

func (b *Builder) beginOption(code uint8) int {
	if b.pxeStart >= 0 {
		b.setErr(ErrBadBuilderUse)
		return -1
	}
	if !b.room(2) {
		return -1
	}
	start := b.n
	b.buf[start] = code
	b.n += 2
	return start
}

func (b *Builder) put(data []byte) {
	if b.room(len(data)) {
		b.n += copy(b.buf[b.n:], data)
	}
}

func (b *Builder) putString(s string) {
	if b.room(len(s)) {
		b.n += copy(b.buf[b.n:], s)
	}
}

// closeOption sets the length of the option opened at start, splitting it
// into 255-byte instances when it is longer (RFC 3396).
func (b *Builder) closeOption(start int) {
	if b.err != nil || start < 0 {
		return
	}
	l := b.n - start - 2
	if l <= 255 {
		b.buf[start+1] = byte(l)
		return
	}
	var ends [maxSplit]int
	k := 0
	for end := 255; k < maxSplit; end += 255 {
		ends[k] = min(end, l)
		k++
		if end >= l {
			b.split(start, ends[:k])
			return
		}
	}
	b.setErr(ErrTooLargeForClient)
}

// maxSplit bounds the instances one option is split into (64 x 255 bytes
// is more than any UDP message a DHCP client accepts).
const maxSplit = 64

// closeEncapsulated closes an option holding sub-options (43). When it is
// longer than 255 bytes it is split between whole sub-options, so that
// receivers that read each instance on its own (many PXE ROMs, Wireshark)
// still see well-formed sub-options; a sub-option that cannot fit one
// instance falls back to a plain split.
func (b *Builder) closeEncapsulated(start int) {
	if b.err != nil || start < 0 {
		return
	}
	l := b.n - start - 2
	if l <= 255 {
		b.buf[start+1] = byte(l)
		return
	}
	data := b.buf[start+2 : b.n]
	var ends [maxSplit]int
	k, chunk, i := 0, 0, 0
	for i < l {
		sub := 1
		if c := data[i]; c != OptPad && c != OptEnd && i+1 < l {
			sub = 2 + int(data[i+1])
		}
		if sub > 255 || k == maxSplit-1 {
			b.closeOption(start)
			return
		}
		if i+sub-chunk > 255 {
			ends[k] = i
			k++
			chunk = i
		}
		i += sub
	}
	ends[k] = l
	k++
	b.split(start, ends[:k])
}

// split rewrites the option opened at start (data from start+2 to b.n) as
// len(ends) instances; ends are the chunk ends relative to the data start.
func (b *Builder) split(start int, ends []int) {
	extra := 2 * (len(ends) - 1)
	if !b.room(extra) {
		return
	}
	code := b.buf[start]
	for j := len(ends) - 1; j >= 0; j-- {
		lo := 0
		if j > 0 {
			lo = ends[j-1]
		}
		hi := ends[j]
		at := start + lo + 2*j
		copy(b.buf[at+2:], b.buf[start+2+lo:start+2+hi])
		b.buf[at] = code
		b.buf[at+1] = byte(hi - lo)
	}
	b.n += extra
}

// AddOption appends option code with data (split if longer than 255 bytes).
func (b *Builder) AddOption(code uint8, data []byte) {
	start := b.beginOption(code)
	b.put(data)
	b.closeOption(start)
}

// AddString appends option code with a text value.
func (b *Builder) AddString(code uint8, s string) {
	start := b.beginOption(code)
	b.putString(s)
	b.closeOption(start)
}

// AddByte appends a one-byte option.
func (b *Builder) AddByte(code uint8, v uint8) {
	start := b.beginOption(code)
	if b.room(1) {
		b.buf[b.n] = v
		b.n++
	}
	b.closeOption(start)
}

// AddUint16 appends a two-byte big-endian option.
func (b *Builder) AddUint16(code uint8, v uint16) {
	start := b.beginOption(code)
	if b.room(2) {
		binary.BigEndian.PutUint16(b.buf[b.n:], v)
		b.n += 2
	}
	b.closeOption(start)
}

// AddAddr appends an option holding one IPv4 address.
func (b *Builder) AddAddr(code uint8, a [4]byte) { b.AddOption(code, a[:]) }

// AddServerID appends option 54.
func (b *Builder) AddServerID(a [4]byte) { b.AddAddr(OptServerID, a) }

// EchoOption copies option code from req (joined if it was split) and
// reports whether req carried it. PXE servers echo 97, the client machine
// identifier.
func (b *Builder) EchoOption(req *Packet, code uint8) bool {
	v, ok := req.Lookup(code)
	if ok {
		b.AddOption(code, v)
	}
	return ok
}

// BeginPXE opens option 43 for PXE vendor sub-options; close it with EndPXE.
func (b *Builder) BeginPXE() {
	b.pxeStart = -1
	start := b.beginOption(OptVendorSpecific)
	if start >= 0 {
		b.pxeStart = start
	}
}

func (b *Builder) beginSub(code uint8, size int) bool {
	if b.pxeStart < 0 {
		b.setErr(ErrBadBuilderUse)
		return false
	}
	if size > 255 {
		b.setErr(ErrFieldTooLong)
		return false
	}
	if !b.room(2 + size) {
		return false
	}
	b.buf[b.n] = code
	b.buf[b.n+1] = byte(size)
	b.n += 2
	return true
}

// PXEDiscoveryControl adds sub-option 6 (bit 0 disable broadcast discovery,
// bit 1 disable multicast, bit 2 use only the servers of sub-option 8, bit 3
// the boot file name in this reply is to be used directly).
func (b *Builder) PXEDiscoveryControl(v uint8) {
	if b.beginSub(PXEDiscoveryControl, 1) {
		b.buf[b.n] = v
		b.n++
	}
}

// PXEBootServer adds sub-option 8 with one boot server type and its addresses.
func (b *Builder) PXEBootServer(typ uint16, addrs ...[4]byte) {
	if len(addrs) > 63 {
		b.setErr(ErrFieldTooLong)
		return
	}
	if b.beginSub(PXEBootServers, 3+4*len(addrs)) {
		binary.BigEndian.PutUint16(b.buf[b.n:], typ)
		b.buf[b.n+2] = byte(len(addrs))
		b.n += 3
		for _, a := range addrs {
			b.n += copy(b.buf[b.n:], a[:])
		}
	}
}

// MenuItem is one entry of the PXE boot menu (sub-option 9).
type MenuItem struct {
	Type        uint16
	Description string
}

// PXEBootMenu adds sub-option 9 listing items.
func (b *Builder) PXEBootMenu(items ...MenuItem) {
	size := 0
	for _, it := range items {
		if len(it.Description) > 255 {
			b.setErr(ErrFieldTooLong)
			return
		}
		size += 3 + len(it.Description)
	}
	if b.beginSub(PXEBootMenu, size) {
		for _, it := range items {
			binary.BigEndian.PutUint16(b.buf[b.n:], it.Type)
			b.buf[b.n+2] = byte(len(it.Description))
			b.n += 3
			b.n += copy(b.buf[b.n:], it.Description)
		}
	}
}

// PXEMenuPrompt adds sub-option 10: the timeout in seconds (255 waits for a
// key) and the prompt text.
func (b *Builder) PXEMenuPrompt(timeout uint8, prompt string) {
	if b.beginSub(PXEMenuPrompt, 1+len(prompt)) {
		b.buf[b.n] = timeout
		b.n++
		b.n += copy(b.buf[b.n:], prompt)
	}
}

// PXEBootItem adds sub-option 71: boot server type and layer.
func (b *Builder) PXEBootItem(typ, layer uint16) {
	if b.beginSub(PXEBootItem, 4) {
		binary.BigEndian.PutUint16(b.buf[b.n:], typ)
		binary.BigEndian.PutUint16(b.buf[b.n+2:], layer)
		b.n += 4
	}
}

// EndPXE terminates the sub-options with End and closes option 43.
func (b *Builder) EndPXE() {
	if b.pxeStart < 0 {
		b.setErr(ErrBadBuilderUse)
		return
	}
	start := b.pxeStart
	b.pxeStart = -1
	if b.room(1) {
		b.buf[b.n] = OptEnd
		b.n++
	}
	b.closeEncapsulated(start)
}

// Len returns the number of bytes written so far.
func (b *Builder) Len() int { return b.n }

// Finish appends End, pads with zeros to the 300-byte BOOTP minimum and
// returns the message (a prefix of the buffer given to Start) or the first
// error met while building.
func (b *Builder) Finish() ([]byte, error) {
	if b.pxeStart >= 0 {
		b.setErr(ErrBadBuilderUse)
	}
	if b.room(1) {
		b.buf[b.n] = OptEnd
		b.n++
	}
	if b.n < MinBOOTPSize && b.room(MinBOOTPSize-b.n) {
		clear(b.buf[b.n:MinBOOTPSize])
		b.n = MinBOOTPSize
	}
	b.ok = false
	if b.err != nil {
		return nil, b.err
	}
	return b.buf[:b.n], nil
}
