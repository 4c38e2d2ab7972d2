package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
)

// Layout constants. See docs/ELECTION.md for the byte-by-byte layout.
const (
	Magic0 = 'P' // first byte of every message
	Magic1 = 'B' // second byte of every message
	// Version is the only layout this codec speaks; a message with another
	// version byte is dropped (ErrVersion). Version 1 had no balance field
	// in Load.
	Version = 2

	HeaderLen = 38 // magic(2) version(1) type(1) subnet(8) sender(8) time(8) nonce(8) bodylen(2)
	MACLen    = sha256.Size
	// MaxImages bounds the image hashes one heartbeat carries.
	MaxImages = 128
	// MaxPayload bounds Central's answer carried by a handoff.
	MaxPayload = 1024
	// MaxMessage is the largest message this codec produces or accepts.
	MaxMessage = HeaderLen + handoffFixed + MaxPayload + MACLen

	loadLen        = 1 + 4 + 8 + 2                  // weight transfers bytes/s balance
	heartbeatFixed = 1 + 4 + 4 + 2*loadLen + 16 + 2 // flags interval epoch now next addr count
	clientFixed    = 6 + 1 + 16                     // mac flags guid
	claimFixed     = clientFixed + 8 + 4            // + image hash, hold ms
	handoffFixed   = claimFixed + 8 + 2             // + target, payload length
)

// Type is the kind of message.
type Type uint8

// Message types.
const (
	TypeHeartbeat Type = 1
	TypeClaim     Type = 2
	TypeHandoff   Type = 3
)

func (t Type) String() string {
	switch t {
	case TypeHeartbeat:
		return "heartbeat"
	case TypeClaim:
		return "claim"
	case TypeHandoff:
		return "handoff"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Heartbeat flags.
const (
	FlagLeaving = 1 << 1 // the sender is shutting down: drop it from the view now
)

// Client flags.
const (
	FlagHasGUID = 1 << 0
)

// Errors returned by Decode. Callers count drops by errors.Is on these.
var (
	ErrShort     = errors.New("wire: message too short")
	ErrMagic     = errors.New("wire: not an election message")
	ErrVersion   = errors.New("wire: unsupported version")
	ErrAuth      = errors.New("wire: authentication failed")
	ErrMalformed = errors.New("wire: malformed message")
)

// Header is the part common to every message.
type Header struct {
	Type   Type
	Subnet uint64 // subnet id; receivers drop other subnets
	Sender uint64 // agent id of the sender
	Time   int64  // sender's clock, Unix milliseconds
	Nonce  uint64 // per-sender sequence; with Time it defeats replays
}

// Balance bounds: Load.Balance scales the ranking weight by
// (BalanceOne+Balance)/BalanceOne, from 0.5 to 2 times.
const (
	BalanceOne = 1024
	MinBalance = -BalanceOne / 2
	MaxBalance = BalanceOne
)

// Load is what the ranking weighs: ElectionWeight, the load, and the
// sender's balancing adjustment.
type Load struct {
	Weight      uint8  // 0-99; 0 never answers
	Transfers   uint32 // active transfers
	BytesPerSec uint64 // send rate
	// Balance multiplies the weight by (BalanceOne+Balance)/BalanceOne so
	// the sender catches up on (or gives back) clients the hash gave it
	// too few (too many) of; 0 means no adjustment. MinBalance..MaxBalance.
	Balance int16
}

func (l Load) valid() bool {
	return l.Weight <= 99 && l.Balance >= MinBalance && l.Balance <= MaxBalance
}

// Heartbeat announces an agent, its weight and load, and its images.
// Weight and load change only at epoch boundaries (multiples of EpochMS
// since the Unix epoch): Now is in force during the epoch holding the
// message's timestamp, Next from the following one, so every agent
// switches at the same instant whichever heartbeats it lost.
type Heartbeat struct {
	Flags      uint8  // FlagLeaving
	IntervalMS uint32 // the sender's heartbeat interval
	EpochMS    uint32 // the sender's load epoch, > 0
	Now, Next  Load
	Addr       [16]byte
	Images     []uint64 // ImageHash of each boot image held
}

// Client identifies a PXE client.
type Client struct {
	MAC     [6]byte
	HasGUID bool
	GUID    [16]byte
}

// Claim says the sender answers Client and holds it for HoldMS.
type Claim struct {
	Client Client
	Image  uint64 // ImageHash of the image needed, 0 if unknown
	HoldMS uint32
}

// Handoff passes Client to Target with Central's answer.
type Handoff struct {
	Claim
	Target  uint64
	Payload []byte // opaque; aliases the decoded buffer
}

// Message is one decoded message. Only the part matching Header.Type is set.
type Message struct {
	Header
	Heartbeat Heartbeat
	Claim     Claim
	Handoff   Handoff
}

// ImageHash is the 64-bit id of a boot image name (FNV-1a). 0 is reserved
// for "no image", so a name hashing to 0 maps to 1.
func ImageHash(name string) uint64 {
	if name == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	v := h.Sum64()
	if v == 0 {
		v = 1
	}
	return v
}

// Codec encodes and decodes messages under one site key. It is not safe
// for concurrent use (it reuses its HMAC state); use one per goroutine.
type Codec struct {
	mac hash.Hash
	sum [MACLen]byte
}

// NewCodec returns a codec for the site key (at least 16 bytes).
func NewCodec(key []byte) (*Codec, error) {
	if len(key) < 16 {
		return nil, fmt.Errorf("wire: site key is %d bytes, need at least 16", len(key))
	}
	k := append([]byte(nil), key...)
	return &Codec{mac: hmac.New(sha256.New, k)}, nil
}

// AppendHeartbeat appends an authenticated heartbeat to dst.
func (c *Codec) AppendHeartbeat(dst []byte, h Header, hb *Heartbeat) ([]byte, error) {
	if len(hb.Images) > MaxImages {
		return dst, fmt.Errorf("wire: %d images, at most %d", len(hb.Images), MaxImages)
	}
	if !hb.Now.valid() || !hb.Next.valid() {
		return dst, fmt.Errorf("wire: weight %d/%d above 99 or balance %d/%d outside %d..%d", hb.Now.Weight, hb.Next.Weight, hb.Now.Balance, hb.Next.Balance, MinBalance, MaxBalance)
	}
	if hb.EpochMS == 0 {
		return dst, errors.New("wire: heartbeat without a load epoch")
	}
	h.Type = TypeHeartbeat
	start := len(dst)
	dst = appendHeader(dst, h, heartbeatFixed+8*len(hb.Images))
	dst = append(dst, hb.Flags)
	dst = binary.BigEndian.AppendUint32(dst, hb.IntervalMS)
	dst = binary.BigEndian.AppendUint32(dst, hb.EpochMS)
	dst = appendLoad(dst, hb.Now)
	dst = appendLoad(dst, hb.Next)
	dst = append(dst, hb.Addr[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(hb.Images)))
	for _, im := range hb.Images {
		dst = binary.BigEndian.AppendUint64(dst, im)
	}
	return c.seal(dst, start), nil
}

// AppendClaim appends an authenticated claim to dst.
func (c *Codec) AppendClaim(dst []byte, h Header, cl *Claim) []byte {
	h.Type = TypeClaim
	start := len(dst)
	dst = appendHeader(dst, h, claimFixed)
	dst = appendClaim(dst, cl)
	return c.seal(dst, start)
}

// AppendHandoff appends an authenticated handoff to dst.
func (c *Codec) AppendHandoff(dst []byte, h Header, ho *Handoff) ([]byte, error) {
	if len(ho.Payload) > MaxPayload {
		return dst, fmt.Errorf("wire: handoff payload is %d bytes, at most %d", len(ho.Payload), MaxPayload)
	}
	h.Type = TypeHandoff
	start := len(dst)
	dst = appendHeader(dst, h, handoffFixed+len(ho.Payload))
	dst = appendClaim(dst, &ho.Claim)
	dst = binary.BigEndian.AppendUint64(dst, ho.Target)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ho.Payload)))
	dst = append(dst, ho.Payload...)
	return c.seal(dst, start), nil
}

func appendHeader(dst []byte, h Header, bodyLen int) []byte {
	dst = append(dst, Magic0, Magic1, Version, byte(h.Type))
	dst = binary.BigEndian.AppendUint64(dst, h.Subnet)
	dst = binary.BigEndian.AppendUint64(dst, h.Sender)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Time))
	dst = binary.BigEndian.AppendUint64(dst, h.Nonce)
	return binary.BigEndian.AppendUint16(dst, uint16(bodyLen))
}

func appendLoad(dst []byte, l Load) []byte {
	dst = append(dst, l.Weight)
	dst = binary.BigEndian.AppendUint32(dst, l.Transfers)
	dst = binary.BigEndian.AppendUint64(dst, l.BytesPerSec)
	return binary.BigEndian.AppendUint16(dst, uint16(l.Balance))
}

func decodeLoad(p []byte) Load {
	return Load{Weight: p[0], Transfers: binary.BigEndian.Uint32(p[1:]), BytesPerSec: binary.BigEndian.Uint64(p[5:]), Balance: int16(binary.BigEndian.Uint16(p[13:]))}
}

func appendClaim(dst []byte, cl *Claim) []byte {
	dst = append(dst, cl.Client.MAC[:]...)
	var f byte
	if cl.Client.HasGUID {
		f |= FlagHasGUID
	}
	dst = append(dst, f)
	dst = append(dst, cl.Client.GUID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, cl.Image)
	return binary.BigEndian.AppendUint32(dst, cl.HoldMS)
}

// Seal appends the HMAC of msg (a header and body built by hand, as a test
// or a fuzzer does) and returns the complete message.
func (c *Codec) Seal(msg []byte) []byte { return c.seal(msg, 0) }

func (c *Codec) seal(dst []byte, start int) []byte {
	c.mac.Reset()
	c.mac.Write(dst[start:])
	return c.mac.Sum(dst)
}

// Decode authenticates b and decodes it into m, reusing m.Heartbeat.Images.
// Handoff payloads alias b. Checks run in this order: length and magic,
// version, HMAC, then the body; the caller checks subnet, time and nonce.
func (c *Codec) Decode(b []byte, m *Message) error {
	if len(b) < HeaderLen+MACLen {
		return ErrShort
	}
	if b[0] != Magic0 || b[1] != Magic1 {
		return ErrMagic
	}
	if b[2] != Version {
		return fmt.Errorf("%w: %d", ErrVersion, b[2])
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	body := int(binary.BigEndian.Uint16(b[36:38]))
	if HeaderLen+body+MACLen != len(b) {
		return fmt.Errorf("%w: body length %d in a %d-byte message", ErrMalformed, body, len(b))
	}
	signed := b[:HeaderLen+body]
	c.mac.Reset()
	c.mac.Write(signed)
	sum := c.mac.Sum(c.sum[:0])
	if !hmac.Equal(sum, b[HeaderLen+body:]) {
		return ErrAuth
	}
	m.Type = Type(b[3])
	m.Subnet = binary.BigEndian.Uint64(b[4:12])
	m.Sender = binary.BigEndian.Uint64(b[12:20])
	m.Time = int64(binary.BigEndian.Uint64(b[20:28]))
	m.Nonce = binary.BigEndian.Uint64(b[28:36])
	p := signed[HeaderLen:]
	switch m.Type {
	case TypeHeartbeat:
		return decodeHeartbeat(p, &m.Heartbeat)
	case TypeClaim:
		if len(p) != claimFixed {
			return fmt.Errorf("%w: claim body is %d bytes", ErrMalformed, len(p))
		}
		decodeClaim(p, &m.Claim)
		return nil
	case TypeHandoff:
		if len(p) < handoffFixed {
			return fmt.Errorf("%w: handoff body is %d bytes", ErrMalformed, len(p))
		}
		decodeClaim(p, &m.Handoff.Claim)
		m.Handoff.Target = binary.BigEndian.Uint64(p[claimFixed:])
		n := int(binary.BigEndian.Uint16(p[claimFixed+8:]))
		if n > MaxPayload || handoffFixed+n != len(p) {
			return fmt.Errorf("%w: handoff payload length %d", ErrMalformed, n)
		}
		m.Handoff.Payload = p[handoffFixed:]
		return nil
	}
	return fmt.Errorf("%w: unknown type %d", ErrMalformed, b[3])
}

func decodeHeartbeat(p []byte, hb *Heartbeat) error {
	if len(p) < heartbeatFixed {
		return fmt.Errorf("%w: heartbeat body is %d bytes", ErrMalformed, len(p))
	}
	hb.Flags = p[0]
	hb.IntervalMS = binary.BigEndian.Uint32(p[1:])
	hb.EpochMS = binary.BigEndian.Uint32(p[5:])
	hb.Now = decodeLoad(p[9:])
	hb.Next = decodeLoad(p[9+loadLen:])
	if !hb.Now.valid() || !hb.Next.valid() {
		return fmt.Errorf("%w: weight %d/%d, balance %d/%d", ErrMalformed, hb.Now.Weight, hb.Next.Weight, hb.Now.Balance, hb.Next.Balance)
	}
	if hb.EpochMS == 0 {
		return fmt.Errorf("%w: load epoch 0", ErrMalformed)
	}
	copy(hb.Addr[:], p[9+2*loadLen:])
	n := int(binary.BigEndian.Uint16(p[heartbeatFixed-2:]))
	if n > MaxImages || heartbeatFixed+8*n != len(p) {
		return fmt.Errorf("%w: %d images in a %d-byte heartbeat", ErrMalformed, n, len(p))
	}
	hb.Images = hb.Images[:0]
	for i := 0; i < n; i++ {
		hb.Images = append(hb.Images, binary.BigEndian.Uint64(p[heartbeatFixed+8*i:]))
	}
	return nil
}

func decodeClaim(p []byte, cl *Claim) {
	copy(cl.Client.MAC[:], p[0:6])
	cl.Client.HasGUID = p[6]&FlagHasGUID != 0
	copy(cl.Client.GUID[:], p[7:23])
	cl.Image = binary.BigEndian.Uint64(p[23:31])
	cl.HoldMS = binary.BigEndian.Uint32(p[31:35])
}
