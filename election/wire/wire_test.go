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
	hb := Heartbeat{Flags: FlagLeaving, IntervalMS: 1000, EpochMS: 10000, Now: Load{Weight: 50, Transfers: 3, BytesPerSec: 12345678}, Next: Load{Weight: 99, Transfers: 4, BytesPerSec: 1 << 40},
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
		{"old version", mutate(func(b []byte) []byte { b[2] = 0; return b }), ErrVersion},
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
