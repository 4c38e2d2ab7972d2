package wire

import (
	"bytes"
	"errors"
	"testing"
)

var testKey = []byte("0123456789abcdef-site-key")

func newCodec(t testing.TB, key []byte) *Codec {
	t.Helper()
	c, err := NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sampleHeader() Header {
	return Header{Subnet: 0x1122334455667788, Sender: 42, Time: 1_700_000_000_123, Nonce: 7}
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, testKey)
	h := sampleHeader()
	cl := Claim{Client: Client{MAC: [6]byte{0x52, 0x54, 0, 1, 2, 3}, HasGUID: true, GUID: [16]byte{1, 2, 3}}, Image: ImageHash("winpe-x64"), HoldMS: 30000}
	hb := Heartbeat{Flags: FlagLeaving, IntervalMS: 1000, EpochMS: 10000, Now: Load{Weight: 50, Transfers: 3, BytesPerSec: 12345678, Balance: MinBalance}, Next: Load{Weight: 99, Transfers: 4, BytesPerSec: 1 << 40, Balance: 517},
		Addr: [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 14: 5, 15: 1}, Images: []uint64{1, 2, ImageHash("x")}}
	ho := Handoff{Claim: cl, Target: 99, Payload: []byte("central answer")}

	hbMsg, err := c.AppendHeartbeat(nil, h, &hb)
	if err != nil {
		t.Fatal(err)
	}
	hoMsg, err := c.AppendHandoff(nil, h, &ho)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		msg   []byte
		check func(t *testing.T, m *Message)
	}{
		{"heartbeat", hbMsg, func(t *testing.T, m *Message) {
			if m.Type != TypeHeartbeat || m.Heartbeat.Now != hb.Now || m.Heartbeat.Next != hb.Next || m.Heartbeat.EpochMS != 10000 ||
				m.Heartbeat.IntervalMS != 1000 || m.Heartbeat.Flags != FlagLeaving || m.Heartbeat.Addr != hb.Addr || len(m.Heartbeat.Images) != 3 || m.Heartbeat.Images[2] != ImageHash("x") {
				t.Fatalf("heartbeat decoded as %+v", m.Heartbeat)
			}
		}},
		{"claim", c.AppendClaim(nil, h, &cl), func(t *testing.T, m *Message) {
			if m.Type != TypeClaim || m.Claim != cl {
				t.Fatalf("claim decoded as %+v, want %+v", m.Claim, cl)
			}
		}},
		{"handoff", hoMsg, func(t *testing.T, m *Message) {
			if m.Type != TypeHandoff || m.Handoff.Claim != cl || m.Handoff.Target != 99 || string(m.Handoff.Payload) != "central answer" {
				t.Fatalf("handoff decoded as %+v", m.Handoff)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := c.Decode(tt.msg, &m); err != nil {
				t.Fatal(err)
			}
			if m.Subnet != h.Subnet || m.Sender != h.Sender || m.Time != h.Time || m.Nonce != h.Nonce {
				t.Fatalf("header decoded as %+v, want %+v", m.Header, h)
			}
			tt.check(t, &m)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	c := newCodec(t, testKey)
	other := newCodec(t, []byte("another-site-key-0000"))
	cl := Claim{Client: Client{MAC: [6]byte{1, 2, 3, 4, 5, 6}}, HoldMS: 1}
	good := c.AppendClaim(nil, sampleHeader(), &cl)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"truncated", good[:HeaderLen+10], ErrShort},
		{"magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"version 0", mutate(func(b []byte) []byte { b[2] = 0; return b }), ErrVersion},
		{"version 1 (no balance field)", mutate(func(b []byte) []byte { b[2] = 1; return b }), ErrVersion},
		{"wrong key", other.AppendClaim(nil, sampleHeader(), &cl), ErrAuth},
		{"tampered body", mutate(func(b []byte) []byte { b[HeaderLen] ^= 1; return b }), ErrAuth},
		{"tampered mac", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrAuth},
		{"extra byte", mutate(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		{"body length lies", mutate(func(b []byte) []byte { b[37]++; return b }), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := c.Decode(tt.msg, &m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeLimits(t *testing.T) {
	c := newCodec(t, testKey)
	if _, err := c.AppendHeartbeat(nil, sampleHeader(), &Heartbeat{EpochMS: 1, Next: Load{Weight: 100}}); err == nil {
		t.Fatal("weight 100 encoded")
	}
	for _, b := range []int16{MinBalance - 1, MaxBalance + 1} {
		if _, err := c.AppendHeartbeat(nil, sampleHeader(), &Heartbeat{EpochMS: 1, Now: Load{Weight: 1, Balance: b}}); err == nil {
			t.Fatalf("balance %d encoded", b)
		}
	}
	if _, err := c.AppendHeartbeat(nil, sampleHeader(), &Heartbeat{}); err == nil {
		t.Fatal("heartbeat without epoch encoded")
	}
	if _, err := c.AppendHeartbeat(nil, sampleHeader(), &Heartbeat{EpochMS: 1, Images: make([]uint64, MaxImages+1)}); err == nil {
		t.Fatal("too many images encoded")
	}
	if _, err := c.AppendHandoff(nil, sampleHeader(), &Handoff{Payload: make([]byte, MaxPayload+1)}); err == nil {
		t.Fatal("oversized payload encoded")
	}
	if _, err := NewCodec([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
	if ImageHash("") != 0 || ImageHash("a") == 0 || ImageHash("a") == ImageHash("b") {
		t.Fatal("ImageHash: empty must be 0, names distinct and non-zero")
	}
}

// TestHeartbeatLayout pins the byte offsets documented in docs/ELECTION.md
// and checks that a sealed heartbeat carrying an out-of-range weight or
// balance is malformed.
func TestHeartbeatLayout(t *testing.T) {
	c := newCodec(t, testKey)
	hb := Heartbeat{Flags: FlagLeaving, IntervalMS: 0x01020304, EpochMS: 0x05060708,
		Now:  Load{Weight: 11, Transfers: 0x0a0b0c0d, BytesPerSec: 0x1112131415161718, Balance: -2},
		Next: Load{Weight: 22, Transfers: 0x2a2b2c2d, BytesPerSec: 0x2122232425262728, Balance: 0x0304},
		Addr: [16]byte{15: 0xaa}, Images: []uint64{0x3132333435363738}}
	msg, err := c.AppendHeartbeat(nil, sampleHeader(), &hb)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) != HeaderLen+57+8+MACLen || msg[2] != 2 {
		t.Fatalf("heartbeat with one image is %d bytes, version %d; want %d, 2", len(msg), msg[2], HeaderLen+57+8+MACLen)
	}
	body := msg[HeaderLen : len(msg)-MACLen]
	want := map[int][]byte{
		0: {FlagLeaving}, 1: {1, 2, 3, 4}, 5: {5, 6, 7, 8},
		9: {11}, 10: {0x0a, 0x0b, 0x0c, 0x0d}, 14: {0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18}, 22: {0xff, 0xfe},
		24: {22}, 25: {0x2a, 0x2b, 0x2c, 0x2d}, 29: {0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28}, 37: {3, 4},
		54: {0xaa}, 55: {0, 1}, 57: {0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38},
	}
	for off, b := range want {
		if got := body[off : off+len(b)]; !bytes.Equal(got, b) {
			t.Errorf("body offset %d: % x, want % x", off, got, b)
		}
	}
	for _, tc := range []struct {
		name string
		off  int
		val  []byte
	}{
		{"weight 100 now", 9, []byte{100}},
		{"weight 100 next", 24, []byte{100}},
		{"balance below the minimum", 22, []byte{0xfd, 0xff}}, // -513
		{"balance above the maximum", 37, []byte{0x04, 0x01}}, // 1025
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(msg[:len(msg)-MACLen])
			copy(b[HeaderLen+tc.off:], tc.val)
			var m Message
			if err := c.Decode(c.Seal(b), &m); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeClaimAllocs(t *testing.T) {
	c := newCodec(t, testKey)
	msg := c.AppendClaim(nil, sampleHeader(), &Claim{HoldMS: 5})
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.Decode(msg, &m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %v times per claim", allocs)
	}
}

func BenchmarkDecodeClaim(b *testing.B) {
	c := newCodec(b, testKey)
	msg := c.AppendClaim(nil, sampleHeader(), &Claim{HoldMS: 5})
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Decode(msg, &m); err != nil {
			b.Fatal(err)
		}
	}
}
