package dhcp

import (
	"encoding/binary"
	"strconv"
)

// MessageType is the DHCP message type (option 53).
type MessageType uint8

// DHCP message types (RFC 2132 section 9.6).
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
	Inform   MessageType = 8
)

var messageTypeNames = [...]string{"", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"}

// String names the message type.
func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) && t != 0 {
		return messageTypeNames[t]
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// MessageType returns option 53. ok is false when it is absent or not one byte.
func (p *Packet) MessageType() (t MessageType, ok bool) {
	v, ok := p.Lookup(OptMessageType)
	if !ok || len(v) != 1 {
		return 0, false
	}
	return MessageType(v[0]), true
}

func (p *Packet) addr(code uint8) ([4]byte, bool) {
	v, ok := p.Lookup(code)
	if !ok || len(v) != 4 {
		return [4]byte{}, false
	}
	return [4]byte(v), true
}

// ServerID returns option 54, the server identifier.
func (p *Packet) ServerID() ([4]byte, bool) { return p.addr(OptServerID) }

// RequestedIP returns option 50.
func (p *Packet) RequestedIP() ([4]byte, bool) { return p.addr(OptRequestedIP) }

// ParamRequestList returns option 55: the option codes the client asks for.
func (p *Packet) ParamRequestList() ([]byte, bool) { return p.Lookup(OptParamRequestList) }

// Requests reports whether the client listed code in option 55.
func (p *Packet) Requests(code uint8) bool {
	v, _ := p.Lookup(OptParamRequestList)
	for _, c := range v {
		if c == code {
			return true
		}
	}
	return false
}

// MaxMessageSize returns option 57. ok is false when absent or not two bytes.
func (p *Packet) MaxMessageSize() (uint16, bool) {
	v, ok := p.Lookup(OptMaxMessageSize)
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

// DefaultMaxMessageSize is the size every DHCP client must accept (RFC 2131):
// a 576-byte IP datagram.
const DefaultMaxMessageSize = 576

// udpIPOverhead is the IPv4 (no options) plus UDP header size.
const udpIPOverhead = 28

// MaxReplySize returns how many bytes of DHCP payload a reply to this client
// may hold: option 57 (an IP datagram size, at least 576) minus the IPv4 and
// UDP headers, or 548 when the client sent no usable option 57.
func (p *Packet) MaxReplySize() int {
	m, ok := p.MaxMessageSize()
	if !ok || m < DefaultMaxMessageSize {
		m = DefaultMaxMessageSize
	}
	return int(m) - udpIPOverhead
}

// HostName returns option 12.
func (p *Packet) HostName() ([]byte, bool) { return p.Lookup(OptHostName) }

// ClientID returns option 61 (type byte followed by the identifier).
func (p *Packet) ClientID() ([]byte, bool) { return p.Lookup(OptClientID) }

// TFTPServerName returns option 66.
func (p *Packet) TFTPServerName() ([]byte, bool) { return p.Lookup(OptTFTPServerName) }

// BootFileName returns option 67.
func (p *Packet) BootFileName() ([]byte, bool) { return p.Lookup(OptBootFileName) }

// UserClass returns option 77.
func (p *Packet) UserClass() ([]byte, bool) { return p.Lookup(OptUserClass) }

// VendorClassRaw returns option 60 as sent.
func (p *Packet) VendorClassRaw() ([]byte, bool) { return p.Lookup(OptVendorClass) }

// IPXEOptions returns option 175, iPXE's encapsulated options.
func (p *Packet) IPXEOptions() (SubOptions, bool) {
	v, ok := p.Lookup(OptIPXE)
	return SubOptions(v), ok
}

// RelayAgentInfo returns option 82 (RFC 3046).
func (p *Packet) RelayAgentInfo() (RelayAgentInfo, bool) {
	v, ok := p.Lookup(OptRelayAgentInfo)
	return RelayAgentInfo(v), ok
}

// RelayAgentInfo is the value of option 82.
type RelayAgentInfo SubOptions

// CircuitID returns sub-option 1, the agent circuit id.
func (r RelayAgentInfo) CircuitID() ([]byte, bool) { return SubOptions(r).Lookup(1) }

// RemoteID returns sub-option 2, the agent remote id.
func (r RelayAgentInfo) RemoteID() ([]byte, bool) { return SubOptions(r).Lookup(2) }

// IsIPXE reports whether the client is iPXE: user class (77) "iPXE", sent
// either raw as iPXE does or as an RFC 3004 length-prefixed instance, or an
// iPXE encapsulated option 175.
func (p *Packet) IsIPXE() bool {
	if p.Has(OptIPXE) {
		return true
	}
	v, ok := p.Lookup(OptUserClass)
	if !ok {
		return false
	}
	if string(v) == "iPXE" {
		return true
	}
	for len(v) > 0 { // RFC 3004: len, data, len, data...
		n := int(v[0])
		if 1+n > len(v) {
			return false
		}
		if string(v[1:1+n]) == "iPXE" {
			return true
		}
		v = v[1+n:]
	}
	return false
}

// Arch is a client system architecture type (RFC 4578 section 2.1 and the
// IANA "Processor Architecture Types" registry).
type Arch uint16

// Common architecture types.
const (
	ArchX86BIOS        Arch = 0
	ArchNECPC98        Arch = 1
	ArchItanium        Arch = 2
	ArchDECAlpha       Arch = 3
	ArchArcX86         Arch = 4
	ArchIntelLeanC     Arch = 5
	ArchEFIIA32        Arch = 6
	ArchEFIX64         Arch = 7 // EFI BC in RFC 4578; x64 UEFI in practice
	ArchEFIXscale      Arch = 8
	ArchEFIX8664       Arch = 9
	ArchEFIARM32       Arch = 10
	ArchEFIARM64       Arch = 11
	ArchEFIIA32HTTP    Arch = 15
	ArchEFIX64HTTP     Arch = 16
	ArchEFIARM32HTTP   Arch = 18
	ArchEFIARM64HTTP   Arch = 19
	ArchEFIRISCV64     Arch = 27
	ArchEFIRISCV64HTTP Arch = 28
)

// String names well-known architectures.
func (a Arch) String() string {
	switch a {
	case ArchX86BIOS:
		return "x86 BIOS"
	case ArchEFIIA32:
		return "EFI IA32"
	case ArchEFIX64:
		return "EFI x64"
	case ArchEFIX8664:
		return "EFI x86-64"
	case ArchEFIARM32:
		return "EFI ARM32"
	case ArchEFIARM64:
		return "EFI ARM64"
	case ArchEFIIA32HTTP:
		return "EFI IA32 HTTP"
	case ArchEFIX64HTTP:
		return "EFI x64 HTTP"
	case ArchEFIARM32HTTP:
		return "EFI ARM32 HTTP"
	case ArchEFIARM64HTTP:
		return "EFI ARM64 HTTP"
	case ArchEFIRISCV64:
		return "EFI RISC-V 64"
	case ArchEFIRISCV64HTTP:
		return "EFI RISC-V 64 HTTP"
	}
	return "arch " + strconv.Itoa(int(a))
}

// ArchList is the value of option 93: a list of 16-bit architecture types.
type ArchList []byte

// Len returns the number of architectures in the list.
func (l ArchList) Len() int { return len(l) / 2 }

// At returns the i-th architecture.
func (l ArchList) At(i int) Arch { return Arch(binary.BigEndian.Uint16(l[2*i:])) }

// ClientArchs returns option 93. ok is false when absent, empty or of odd length.
func (p *Packet) ClientArchs() (ArchList, bool) {
	v, ok := p.Lookup(OptClientArch)
	if !ok || len(v) < 2 || len(v)%2 != 0 {
		return nil, false
	}
	return ArchList(v), true
}

// ClientArch returns the first architecture of option 93.
func (p *Packet) ClientArch() (Arch, bool) {
	v, ok := p.Lookup(OptClientArch)
	if !ok || len(v) < 2 || len(v)%2 != 0 {
		return 0, false
	}
	return Arch(binary.BigEndian.Uint16(v)), true
}

// NII is the client network interface identifier (option 94, RFC 4578):
// type 1 is UNDI, with its major and minor version.
type NII struct {
	Type  uint8
	Major uint8
	Minor uint8
}

// NII returns option 94. ok is false when absent or not three bytes.
func (p *Packet) NII() (NII, bool) {
	v, ok := p.Lookup(OptClientNII)
	if !ok || len(v) != 3 {
		return NII{}, false
	}
	return NII{Type: v[0], Major: v[1], Minor: v[2]}, true
}

// VendorKind classifies option 60.
type VendorKind uint8

const (
	VendorOther VendorKind = iota // anything else, e.g. an OS DHCP client
	VendorPXE                     // "PXEClient..."
	VendorHTTP                    // "HTTPClient..." (UEFI HTTP boot)
)

// String names the kind.
func (k VendorKind) String() string {
	switch k {
	case VendorPXE:
		return "PXEClient"
	case VendorHTTP:
		return "HTTPClient"
	}
	return "other"
}

// VendorClass is option 60 parsed the way PXE and UEFI HTTP boot clients
// format it: "PXEClient:Arch:xxxxx:UNDI:yyyzzz" (or "HTTPClient:..."), where
// xxxxx is the decimal architecture and yyy/zzz the UNDI major/minor.
type VendorClass struct {
	Raw       []byte // option 60 as sent (aliases the message)
	Kind      VendorKind
	HasArch   bool
	Arch      Arch
	HasUNDI   bool
	UNDIMajor uint16
	UNDIMinor uint16
}

// VendorClass returns option 60 parsed. ok is false when option 60 is absent.
// The result lives in p (it is returned by pointer so reading it copies
// nothing) and is valid until the next Decode or VendorClass call on p.
func (p *Packet) VendorClass() (vc *VendorClass, ok bool) {
	v, ok := p.Lookup(OptVendorClass)
	p.vc = VendorClass{}
	if ok {
		parseVendorClass(v, &p.vc)
	}
	return &p.vc, ok
}

// Little-endian words of the fixed parts of a PXE / HTTP boot vendor class.
var (
	wordPXEClien = binary.LittleEndian.Uint64([]byte("PXEClien"))
	wordHTTPClie = binary.LittleEndian.Uint64([]byte("HTTPClie"))
	wordArch     = binary.LittleEndian.Uint32([]byte(":Arc"))
	wordUNDI     = binary.LittleEndian.Uint32([]byte(":UND"))
)

// ParseVendorClass parses a vendor class identifier without allocating.
func ParseVendorClass(v []byte) (vc VendorClass) {
	parseVendorClass(v, &vc)
	return vc
}

func parseVendorClass(v []byte, vc *VendorClass) {
	vc.Raw = v
	var rest []byte
	switch {
	case len(v) >= 9 && binary.LittleEndian.Uint64(v) == wordPXEClien && v[8] == 't':
		vc.Kind, rest = VendorPXE, v[9:]
	case len(v) >= 10 && binary.LittleEndian.Uint64(v) == wordHTTPClie && v[8] == 'n' && v[9] == 't':
		vc.Kind, rest = VendorHTTP, v[10:]
	default:
		return
	}
	// ":Arch:xxxxx" then ":UNDI:yyyzzz"
	if len(rest) < 11 || binary.LittleEndian.Uint32(rest) != wordArch || rest[4] != 'h' || rest[5] != ':' {
		return
	}
	arch, ok := digits5(rest[6:11])
	if !ok || arch > 0xffff {
		return
	}
	vc.HasArch, vc.Arch = true, Arch(arch)
	rest = rest[11:]
	if len(rest) < 12 || binary.LittleEndian.Uint32(rest) != wordUNDI || rest[4] != 'I' || rest[5] != ':' {
		return
	}
	maj, ok1 := digits3(rest[6:9])
	mnr, ok2 := digits3(rest[9:12])
	if ok1 && ok2 {
		vc.HasUNDI, vc.UNDIMajor, vc.UNDIMinor = true, uint16(maj), uint16(mnr)
	}
}

func digits3(b []byte) (int, bool) {
	_ = b[2]
	d0, d1, d2 := b[0]-'0', b[1]-'0', b[2]-'0'
	if d0 > 9 || d1 > 9 || d2 > 9 {
		return 0, false
	}
	return int(d0)*100 + int(d1)*10 + int(d2), true
}

func digits5(b []byte) (int, bool) {
	_ = b[4]
	hi, ok1 := digits3(b[:3])
	d3, d4 := b[3]-'0', b[4]-'0'
	if !ok1 || d3 > 9 || d4 > 9 {
		return 0, false
	}
	return hi*100 + int(d3)*10 + int(d4), true
}

// MachineID is option 97, the client machine identifier (RFC 4578): a type
// byte (0 = UUID) and, for type 0, a 16-byte UUID in the byte order the
// firmware sends (SMBIOS order: the first three fields little-endian).
type MachineID struct {
	Raw  []byte // option 97 as sent, type byte included (aliases the message)
	Type uint8
	UUID [16]byte
}

// ClientMachineID returns option 97. ok is false when it is absent or is not
// type 0 followed by 16 bytes.
func (p *Packet) ClientMachineID() (id *MachineID, ok bool) {
	v, ok := p.Lookup(OptClientMachineID)
	id = &p.mid
	id.Raw, id.Type = v, 0
	if !ok || len(v) != 17 || v[0] != 0 {
		id.UUID = [16]byte{}
		return id, false
	}
	id.UUID = [16]byte(v[1:17])
	return id, true
}

// Usable reports whether the UUID can identify a machine: firmware that has
// no UUID sends all zeros or all 0xFF.
func (m MachineID) Usable() bool {
	u := m.UUID[:]
	if len(m.Raw) == 17 {
		// Read the message, not the copy just stored into UUID: a load
		// of half of a freshly written 16-byte store cannot be forwarded
		// and stalls.
		u = m.Raw[1:]
	}
	a := binary.LittleEndian.Uint64(u[:8])
	b := binary.LittleEndian.Uint64(u[8:16])
	return a|b != 0 && a&b != ^uint64(0)
}

const hexDigits = "0123456789abcdef"

// AppendGUID appends the UUID as the SMBIOS GUID string (lower case,
// 8-4-4-4-12, the first three groups byte-swapped as SMBIOS stores them): the
// form Windows, ConfigMgr and dmidecode print. It does not allocate when dst
// has 36 bytes of spare capacity.
func (m MachineID) AppendGUID(dst []byte) []byte {
	var s [36]byte
	u := &m.UUID
	hexByte(s[0:2], u[3])
	hexByte(s[2:4], u[2])
	hexByte(s[4:6], u[1])
	hexByte(s[6:8], u[0])
	s[8] = '-'
	hexByte(s[9:11], u[5])
	hexByte(s[11:13], u[4])
	s[13] = '-'
	hexByte(s[14:16], u[7])
	hexByte(s[16:18], u[6])
	s[18] = '-'
	hexByte(s[19:21], u[8])
	hexByte(s[21:23], u[9])
	s[23] = '-'
	for i := 0; i < 6; i++ {
		hexByte(s[24+2*i:26+2*i], u[10+i])
	}
	return append(dst, s[:]...)
}

func hexByte(dst []byte, b byte) {
	_ = dst[1]
	dst[0] = hexDigits[b>>4]
	dst[1] = hexDigits[b&0xf]
}

// String returns the SMBIOS GUID string (allocates; see AppendGUID).
func (m MachineID) String() string {
	var b [36]byte
	return string(m.AppendGUID(b[:0]))
}

// PXE vendor sub-option codes inside option 43 (PXE 2.1 specification).
const (
	PXEDiscoveryControl uint8 = 6
	PXEBootServers      uint8 = 8
	PXEBootMenu         uint8 = 9
	PXEMenuPrompt       uint8 = 10
	PXEBootItem         uint8 = 71
)

// PXEVendor is option 43 as a PXE client or server formats it.
type PXEVendor SubOptions

// PXEOptions returns option 43 as PXE vendor sub-options.
func (p *Packet) PXEOptions() (PXEVendor, bool) {
	v, ok := p.Lookup(OptVendorSpecific)
	return PXEVendor(v), ok
}

// Sub returns the raw sub-options.
func (v PXEVendor) Sub() SubOptions { return SubOptions(v) }

// DiscoveryControl returns sub-option 6 (bit 0 disable broadcast, bit 1
// disable multicast, bit 2 only boot servers of sub-option 8, bit 3 boot file
// in this reply).
func (v PXEVendor) DiscoveryControl() (uint8, bool) {
	d, ok := SubOptions(v).Lookup(PXEDiscoveryControl)
	if !ok || len(d) != 1 {
		return 0, false
	}
	return d[0], true
}

// BootItem returns sub-option 71: the boot server type and layer.
func (v PXEVendor) BootItem() (typ, layer uint16, ok bool) {
	d, ok := SubOptions(v).Lookup(PXEBootItem)
	if !ok || len(d) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(d), binary.BigEndian.Uint16(d[2:]), true
}

// MenuPrompt returns sub-option 10: timeout in seconds and prompt text.
func (v PXEVendor) MenuPrompt() (timeout uint8, prompt []byte, ok bool) {
	d, ok := SubOptions(v).Lookup(PXEMenuPrompt)
	if !ok || len(d) < 1 {
		return 0, nil, false
	}
	return d[0], d[1:], true
}

// BootServers returns an iterator over sub-option 8.
func (v PXEVendor) BootServers() BootServerIter {
	d, _ := SubOptions(v).Lookup(PXEBootServers)
	return BootServerIter{b: d}
}

// BootMenu returns an iterator over sub-option 9.
func (v PXEVendor) BootMenu() MenuIter {
	d, _ := SubOptions(v).Lookup(PXEBootMenu)
	return MenuIter{b: d}
}

// BootServerIter walks the entries of sub-option 8: a server type and its
// IPv4 addresses.
type BootServerIter struct {
	b     []byte
	typ   uint16
	addrs []byte
	bad   bool
}

// Next advances to the next boot server entry.
func (it *BootServerIter) Next() bool {
	if len(it.b) < 3 {
		it.bad = it.bad || len(it.b) != 0
		it.b = nil
		return false
	}
	n := int(it.b[2]) * 4
	if 3+n > len(it.b) {
		it.bad, it.b = true, nil
		return false
	}
	it.typ = binary.BigEndian.Uint16(it.b)
	it.addrs = it.b[3 : 3+n]
	it.b = it.b[3+n:]
	return true
}

// Type returns the boot server type.
func (it *BootServerIter) Type() uint16 { return it.typ }

// NumAddrs returns how many addresses the entry lists.
func (it *BootServerIter) NumAddrs() int { return len(it.addrs) / 4 }

// Addr returns the i-th address.
func (it *BootServerIter) Addr(i int) [4]byte { return [4]byte(it.addrs[4*i : 4*i+4]) }

// Malformed reports whether iteration stopped at a truncated entry.
func (it *BootServerIter) Malformed() bool { return it.bad }

// MenuIter walks the entries of sub-option 9: a boot server type and a description.
type MenuIter struct {
	b    []byte
	typ  uint16
	desc []byte
	bad  bool
}

// Next advances to the next menu entry.
func (it *MenuIter) Next() bool {
	if len(it.b) < 3 {
		it.bad = it.bad || len(it.b) != 0
		it.b = nil
		return false
	}
	n := int(it.b[2])
	if 3+n > len(it.b) {
		it.bad, it.b = true, nil
		return false
	}
	it.typ = binary.BigEndian.Uint16(it.b)
	it.desc = it.b[3 : 3+n]
	it.b = it.b[3+n:]
	return true
}

// Type returns the boot server type of the entry.
func (it *MenuIter) Type() uint16 { return it.typ }

// Description returns the entry's text.
func (it *MenuIter) Description() []byte { return it.desc }

// Malformed reports whether iteration stopped at a truncated entry.
func (it *MenuIter) Malformed() bool { return it.bad }
