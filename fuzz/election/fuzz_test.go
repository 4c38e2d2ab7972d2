package election

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/election/wire"
)

// captureKey is the site key of the captured election.
var captureKey = []byte("netlab-election-site-key-0123456789")

// capturedMessages returns the UDP 2012 payloads of testdata/election.pcap.
func capturedMessages(tb testing.TB) [][]byte {
	tb.Helper()
	f, err := os.Open("testdata/election.pcap")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.DstPort == 2012 {
			out = append(out, append([]byte(nil), u.Payload...))
		}
	}
	if len(out) < 50 {
		tb.Fatalf("capture holds only %d election messages", len(out))
	}
	return out
}

func TestCaptureDecodes(t *testing.T) {
	c, err := wire.NewCodec(captureKey)
	if err != nil {
		t.Fatal(err)
	}
	types := map[wire.Type]int{}
	authFailures := 0
	var m wire.Message
	for _, msg := range capturedMessages(t) {
		switch err := c.Decode(msg, &m); {
		case err == nil:
			types[m.Type]++
		case errors.Is(err, wire.ErrAuth):
			authFailures++ // the intruder's wrong key
		default:
			t.Fatalf("captured message does not decode: %v", err)
		}
	}
	if types[wire.TypeHeartbeat] == 0 || types[wire.TypeClaim] == 0 || authFailures == 0 {
		t.Fatalf("capture lacks heartbeats, claims or intruder traffic: %v, %d auth failures", types, authFailures)
	}
}

func FuzzDecode(f *testing.F) {
	for _, msg := range capturedMessages(f) {
		f.Add(msg)
	}
	c, err := wire.NewCodec(captureKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m wire.Message
		if err := c.Decode(b, &m); err != nil {
			return
		}
		checkRoundTrip(t, c, &m)
	})
}

// sealed wraps body (first byte: message type) in a valid header and HMAC,
// so the fuzzer explores the body parser behind the authentication.
func sealed(c *wire.Codec, typ byte, body []byte) []byte {
	msg := []byte{wire.Magic0, wire.Magic1, wire.Version, typ}
	msg = binary.BigEndian.AppendUint64(msg, 1)             // subnet
	msg = binary.BigEndian.AppendUint64(msg, 2)             // sender
	msg = binary.BigEndian.AppendUint64(msg, 1_700_000_000) // time
	msg = binary.BigEndian.AppendUint64(msg, 3)             // nonce
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(body)))
	msg = append(msg, body...)
	return c.Seal(msg)
}

func FuzzDecodeBody(f *testing.F) {
	c, err := wire.NewCodec(captureKey)
	if err != nil {
		f.Fatal(err)
	}
	var m wire.Message
	for _, msg := range capturedMessages(f) {
		if c.Decode(msg, &m) == nil {
			f.Add(msg[3], msg[wire.HeaderLen:len(msg)-wire.MACLen])
		}
	}
	ho, _ := c.AppendHandoff(nil, wire.Header{}, &wire.Handoff{Target: 9, Payload: []byte("central answer")})
	f.Add(byte(wire.TypeHandoff), ho[wire.HeaderLen:len(ho)-wire.MACLen])
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		if len(body) > 4096 {
			return
		}
		var m wire.Message
		if err := c.Decode(sealed(c, typ, body), &m); err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrShort) {
				t.Fatalf("a sealed message failed with %v", err)
			}
			return
		}
		checkRoundTrip(t, c, &m)
	})
}

// checkRoundTrip re-encodes a decoded message and decodes it again: the
// result must match.
func checkRoundTrip(t *testing.T, c *wire.Codec, m *wire.Message) {
	t.Helper()
	var again []byte
	var err error
	switch m.Type {
	case wire.TypeHeartbeat:
		again, err = c.AppendHeartbeat(nil, m.Header, &m.Heartbeat)
	case wire.TypeClaim:
		again = c.AppendClaim(nil, m.Header, &m.Claim)
	case wire.TypeHandoff:
		again, err = c.AppendHandoff(nil, m.Header, &m.Handoff)
	default:
		t.Fatalf("decoded unknown type %d", m.Type)
	}
	if err != nil {
		t.Fatalf("decoded message does not re-encode: %v", err)
	}
	var m2 wire.Message
	if err := c.Decode(again, &m2); err != nil {
		t.Fatalf("re-encoded message does not decode: %v", err)
	}
	if m2.Header != m.Header || m2.Claim != m.Claim || m2.Heartbeat.Now != m.Heartbeat.Now || m2.Heartbeat.Next != m.Heartbeat.Next ||
		len(m2.Heartbeat.Images) != len(m.Heartbeat.Images) || string(m2.Handoff.Payload) != string(m.Handoff.Payload) || m2.Handoff.Target != m.Handoff.Target {
		t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
	}
}

// fuzzClock is a hand-moved clock for the state-machine target.
type fuzzClock struct {
	now    time.Time
	timers []*fuzzTimer
}

type fuzzTimer struct {
	at   time.Time
	f    func()
	done bool
}

func (t *fuzzTimer) Stop() bool { s := !t.done; t.done = true; return s }

func (c *fuzzClock) Now() time.Time { return c.now }

func (c *fuzzClock) AfterFunc(d time.Duration, f func()) election.Timer {
	t := &fuzzTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *fuzzClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	for i := 0; i < len(c.timers); i++ { // timers may add timers
		if t := c.timers[i]; !t.done && !t.at.After(c.now) {
			t.done = true
			t.f()
		}
	}
}

type discard struct{ n int }

func (d *discard) Send([]byte) error { d.n++; return nil }

// FuzzElector feeds an Elector arbitrary authenticated messages from
// arbitrary senders, interleaved with client requests, handoffs and time:
// it must never panic, every request must get exactly one decision, and the
// view must stay within its bounds.
func FuzzElector(f *testing.F) {
	f.Add([]byte{0, 1, 50, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 7, 3, 7, 2, 200})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	codec, err := wire.NewCodec(captureKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		clk := &fuzzClock{now: time.Unix(1_800_000_000, 0)}
		tr := &discard{}
		e, err := election.New(election.Config{Agent: 1, Subnet: 5, Key: captureKey, MaxMembers: 8, MaxClients: 16,
			HeartbeatInterval: 100 * time.Millisecond, ElectionWait: 50 * time.Millisecond}, clk, tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		clk.advance(150 * time.Millisecond)
		requests, decisions := 0, 0
		done := func(election.Decision) { decisions++ }
		nonce := uint64(0)
		for len(prog) >= 2 {
			op, arg := prog[0], prog[1]
			prog = prog[2:]
			switch op % 6 {
			case 0: // a heartbeat from agent arg%12
				nonce++
				hb := wire.Heartbeat{Flags: arg >> 6, IntervalMS: uint32(arg) * 10, EpochMS: uint32(arg)*40 + 1, Now: wire.Load{Weight: arg % 100, Transfers: uint32(arg), Balance: int16(arg)*6 - wire.BalanceOne/2},
					Next: wire.Load{Weight: (arg * 7) % 100, BytesPerSec: uint64(arg) << 20, Balance: wire.BalanceOne - int16(arg)*6}, Images: []uint64{uint64(arg % 4)}}
				msg, _ := codec.AppendHeartbeat(nil, wire.Header{Subnet: 5, Sender: uint64(arg % 12), Time: clk.now.UnixMilli(), Nonce: nonce}, &hb)
				e.Receive(msg)
			case 1: // a claim for client arg%20 from agent arg%7
				nonce++
				msg := codec.AppendClaim(nil, wire.Header{Subnet: 5, Sender: uint64(arg % 7), Time: clk.now.UnixMilli(), Nonce: nonce},
					&wire.Claim{Client: wire.Client{MAC: [6]byte{5: arg % 20}}, Image: uint64(arg % 3), HoldMS: uint32(arg) * 100})
				e.Receive(msg)
			case 2: // a handoff of client arg%20 to agent arg%3
				nonce++
				msg, _ := codec.AppendHandoff(nil, wire.Header{Subnet: 5, Sender: uint64(arg % 5), Time: clk.now.UnixMilli(), Nonce: nonce},
					&wire.Handoff{Claim: wire.Claim{Client: wire.Client{MAC: [6]byte{5: arg % 20}}, HoldMS: 1000}, Target: uint64(arg % 3), Payload: prog})
				e.Receive(msg)
			case 3:
				requests++
				e.Request(election.ClientKey{MAC: [6]byte{5: arg % 20}}, string(rune('a'+arg%3)), done)
			case 4:
				requests++
				e.RequestHandOff(election.ClientKey{MAC: [6]byte{5: arg % 20}}, string(rune('a'+arg%3)), prog, done)
			case 5:
				clk.advance(time.Duration(arg) * 5 * time.Millisecond)
			}
			// raw bytes too: whatever they are, no panic
			e.Receive(prog)
		}
		clk.advance(time.Minute) // every pending round and handoff resolves
		if decisions != requests {
			t.Fatalf("%d requests got %d decisions", requests, decisions)
		}
		for _, m := range e.Members() {
			if m.Weight > 99 || m.Balance < 0.5 || m.Balance > 2 {
				t.Fatalf("member %d has weight %d, balance %v", m.Agent, m.Weight, m.Balance)
			}
		}
		if n := len(e.Members()); n > 8 {
			t.Fatalf("view grew to %d members past MaxMembers 8", n)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
