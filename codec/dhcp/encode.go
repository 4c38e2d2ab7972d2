package dhcp

import (
	"bytes"
	"encoding/binary"
)

// AppendEncode appends p re-serialised to dst: the header from p's fields,
// the sname and file fields as decoded (they hold the overloaded options, if
// any), the magic cookie, every option instance of the options field in wire
// order, and End. Pads are dropped. Decoding the result gives a Packet Equal
// to p. It does not allocate when dst has room for len(p.Bytes()) bytes more.
func (p *Packet) AppendEncode(dst []byte) []byte {
	dst = append(dst, p.Op, p.HType, p.HLen, p.Hops)
	dst = binary.BigEndian.AppendUint32(dst, p.XID)
	dst = binary.BigEndian.AppendUint16(dst, p.Secs)
	dst = binary.BigEndian.AppendUint16(dst, p.Flags)
	dst = append(dst, p.CIAddr[:]...)
	dst = append(dst, p.YIAddr[:]...)
	dst = append(dst, p.SIAddr[:]...)
	dst = append(dst, p.GIAddr[:]...)
	dst = append(dst, p.CHAddr[:]...)
	if p.raw != nil {
		dst = append(dst, p.raw[offSName:offCookie]...)
	} else {
		dst = appendZeros(dst, offCookie-offSName)
	}
	dst = append(dst, Magic[:]...)
	it := p.Options()
	for it.Next() {
		if it.Area() != AreaOptions {
			break
		}
		dst = append(dst, it.Code(), byte(len(it.Data())))
		dst = append(dst, it.Data()...)
	}
	dst = append(dst, OptEnd)
	return dst
}

func appendZeros(dst []byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, 0)
	}
	return dst
}

// Equal reports whether p and q carry the same message: the same header
// fields, the same sname and file fields, and the same option instances
// (code, data and area) in the same order. Pads, the presence of End and
// bytes after End do not count.
func (p *Packet) Equal(q *Packet) bool {
	if p.Op != q.Op || p.HType != q.HType || p.HLen != q.HLen || p.Hops != q.Hops ||
		p.XID != q.XID || p.Secs != q.Secs || p.Flags != q.Flags ||
		p.CIAddr != q.CIAddr || p.YIAddr != q.YIAddr || p.SIAddr != q.SIAddr || p.GIAddr != q.GIAddr ||
		p.CHAddr != q.CHAddr || p.overload != q.overload {
		return false
	}
	if !bytes.Equal(p.SNameField(), q.SNameField()) || !bytes.Equal(p.FileField(), q.FileField()) {
		return false
	}
	a, b := p.Options(), q.Options()
	for {
		na, nb := a.Next(), b.Next()
		if na != nb {
			return false
		}
		if !na {
			return true
		}
		if a.Code() != b.Code() || a.Area() != b.Area() || !bytes.Equal(a.Data(), b.Data()) {
			return false
		}
	}
}
