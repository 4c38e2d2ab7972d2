package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/memsock"
)

type echoHandler struct{}

func (echoHandler) Handle(req *engine.Packet, reply *engine.ReplyBuffer) bool {
	if len(req.Payload) < 240 || req.Payload[0] != 1 {
		return false
	}
	reply.Payload = echoReply(req.Payload, reply.Payload)
	return true
}

// start runs an engine on a memsock and stops it at the end of the test.
func start(t *testing.T, sock *memsock.Socket, h engine.Handler, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.Socket, cfg.Handler = sock, h
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func nextReply(t *testing.T, sock *memsock.Socket) memsock.Reply {
	t.Helper()
	select {
	case r := <-sock.Replies():
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
	return memsock.Reply{}
}

func TestEngineAnswersBroadcastDiscover(t *testing.T) {
	sock := memsock.New(16)
	e := start(t, sock, echoHandler{}, engine.Config{Workers: 2})
	if !sock.InjectFrame(discoverFrame(0x01020304)) {
		t.Fatal("inject refused")
	}
	r := nextReply(t, sock)
	if r.Dst.Kind != engine.RouteBroadcast || r.Dst.IP != netip.MustParseAddr("255.255.255.255") ||
		r.Dst.MAC != bcastMAC || r.Dst.Port != 68 || r.Dst.SrcPort != 67 {
		t.Errorf("destination = %+v, want broadcast 255.255.255.255:68 from 67", r.Dst)
	}
	if r.Payload[0] != 2 || binary.BigEndian.Uint32(r.Payload[4:8]) != 0x01020304 {
		t.Errorf("reply op %d xid %#x, want op 2 xid 0x01020304", r.Payload[0], binary.BigEndian.Uint32(r.Payload[4:8]))
	}
	waitFor(t, "counters", func() bool { return e.Counters().Sent == 1 })
	if c := e.Counters(); c.Received != 1 || c.Malformed != 0 || c.DroppedRingFull != 0 {
		t.Errorf("counters = %+v", c)
	}
}

func TestEngineUDPPathUsesDatagramAddresses(t *testing.T) {
	sock := memsock.New(16)
	start(t, sock, echoHandler{}, engine.Config{})
	ci := [4]byte{198, 18, 9, 20}
	msg := bootp(1, 7, false, ci, zero4, zero4, clientMAC)
	sock.InjectDatagram(msg, netip.MustParseAddrPort("198.18.9.20:4011"), netip.MustParseAddrPort("198.18.9.1:4011"), 3)
	r := nextReply(t, sock)
	want := engine.Destination{Kind: engine.RouteCIAddr, IP: netip.AddrFrom4(ci), Port: 4011, SrcPort: 4011}
	if r.Dst != want {
		t.Errorf("destination = %+v, want %+v", r.Dst, want)
	}
}

func TestEngineCountsMalformedAndIgnored(t *testing.T) {
	sock := memsock.New(16)
	e := start(t, sock, echoHandler{}, engine.Config{})
	bad := [][]byte{
		nil,
		{1, 2, 3},
		discoverFrame(1)[:40], // truncated in the UDP header
		func() []byte { f := discoverFrame(1); f[12] = 0x86; f[13] = 0xdd; return f }(), // not IPv4
		func() []byte { f := discoverFrame(1); f[14+9] = 6; return f }(),                // TCP
		func() []byte { f := discoverFrame(1); f[14+6] = 0x20; return f }(),             // fragment
		func() []byte { f := discoverFrame(1); f[14+2] = 0xff; return f }(),             // IP length past the end
	}
	for _, f := range bad {
		sock.InjectFrame(f)
	}
	notBOOTP := udpFrame(clientMAC, bcastMAC, netip.MustParseAddrPort("0.0.0.0:68"), netip.MustParseAddrPort("255.255.255.255:67"),
		bootp(2, 1, false, zero4, zero4, zero4, clientMAC)) // a reply, which echoHandler ignores
	sock.InjectFrame(notBOOTP)
	waitFor(t, "all counted", func() bool { c := e.Counters(); return c.Malformed+c.Ignored == uint64(len(bad))+1 })
	if c := e.Counters(); c.Malformed != uint64(len(bad)) || c.Ignored != 1 || c.Sent != 0 {
		t.Errorf("counters = %+v, want %d malformed, 1 ignored, 0 sent", c, len(bad))
	}
}

// gateHandler blocks every call until the gate opens.
type gateHandler struct {
	gate    chan struct{}
	entered chan struct{}
}

func (g *gateHandler) Handle(req *engine.Packet, reply *engine.ReplyBuffer) bool {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	return echoHandler{}.Handle(req, reply)
}

func TestRingFullDropsWithoutBlockingOrAllocating(t *testing.T) {
	const ring, total = 4, 40
	sock := memsock.New(total + 1)
	g := &gateHandler{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	e := start(t, sock, g, engine.Config{Workers: 1, RingSize: ring, Batch: 2})
	frame := discoverFrame(9)
	sock.InjectFrame(frame)
	<-g.entered // the only worker is now stuck in the handler
	for i := 1; i < total; i++ {
		if !sock.InjectFrame(frame) {
			t.Fatal("inject refused")
		}
	}
	// The reader must read everything although no worker makes progress.
	waitFor(t, "reader to read every packet", func() bool { return e.Counters().Received == total })
	c := e.Counters()
	if want := uint64(total - 1 - ring); c.DroppedRingFull != want {
		t.Errorf("DroppedRingFull = %d, want %d (%+v)", c.DroppedRingFull, want, c)
	}
	// Dropping never allocates.
	got := uint64(total)
	allocs := testing.AllocsPerRun(200, func() {
		sock.InjectFrame(frame)
		got++
		for e.Counters().Received != got {
			runtime.Gosched()
		}
	})
	if allocs != 0 {
		t.Errorf("ring-full drop path: %v allocs per packet, want 0", allocs)
	}
	close(g.gate)
	waitFor(t, "queued packets answered", func() bool { return e.Counters().Sent == 1+ring })
	for range 1 + ring {
		nextReply(t, sock)
	}
	if c := e.Counters(); c.DroppedRingFull != got-1-ring {
		t.Errorf("DroppedRingFull = %d, want %d", c.DroppedRingFull, got-1-ring)
	}
}

func TestZeroAllocsFromReceiveToReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  engine.Config
	}{
		{"ring and workers", engine.Config{Workers: 2}},
		{"inline with batch send", engine.Config{Workers: 2, InlineMax: 32}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := memsock.New(4)
			e := start(t, sock, echoHandler{}, tc.cfg)
			frame := discoverFrame(42)
			allocs := testing.AllocsPerRun(1000, func() {
				sock.InjectFrame(frame)
				<-sock.Replies()
			})
			if allocs != 0 {
				t.Errorf("%v allocs per packet from receive to reply, want 0", allocs)
			}
			if c := e.Counters(); c.Sent < 1000 || c.SendErrors != 0 {
				t.Errorf("counters = %+v", c)
			}
			if inline := tc.cfg.InlineMax > 0; inline != (sock.Flushes() >= 1000) {
				t.Errorf("%d batch flushes for 1001 replies (inline %v)", sock.Flushes(), inline)
			}
		})
	}
}

// TestInlineSendsOneBatchPerRead: the reader answers the first InlineMax
// packets of a read itself and sends their replies with one Flush; the
// rest of the read goes through the ring to the workers.
func TestInlineSendsOneBatchPerRead(t *testing.T) {
	for _, tc := range []struct {
		name            string
		inlineMax       int
		packets         int
		wantBatchedSent int
	}{
		{"whole read inline", 32, 10, 10},
		{"overflow to workers", 4, 10, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := memsock.New(64)
			for i := range tc.packets {
				if !sock.InjectFrame(discoverFrame(uint32(100 + i))) {
					t.Fatal("inject refused")
				}
			}
			// Every packet is queued before the engine starts, so its
			// first read returns all of them.
			e := start(t, sock, echoHandler{}, engine.Config{Workers: 2, Batch: 32, InlineMax: tc.inlineMax})
			seen := map[uint32]bool{}
			for range tc.packets {
				r := nextReply(t, sock)
				seen[binary.BigEndian.Uint32(r.Payload[4:8])] = true
			}
			if len(seen) != tc.packets {
				t.Errorf("%d distinct replies, want %d", len(seen), tc.packets)
			}
			waitFor(t, "counters", func() bool { return e.Counters().Sent == uint64(tc.packets) })
			if f, b := sock.Flushes(), sock.Batched(); f != 1 || b != int64(tc.wantBatchedSent) {
				t.Errorf("%d flushes sent %d replies, want 1 flush of %d", f, b, tc.wantBatchedSent)
			}
			if c := e.Counters(); c.Received != uint64(tc.packets) || c.SendErrors != 0 || c.DroppedRingFull != 0 {
				t.Errorf("counters = %+v", c)
			}
		})
	}
}

func TestRunStopsOnSocketError(t *testing.T) {
	boom := errors.New("boom")
	e, err := engine.New(engine.Config{Socket: failingSocket{boom}, Handler: echoHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
}

type failingSocket struct{ err error }

func (f failingSocket) ReadBatch([]*engine.Packet) (int, error) { return 0, f.err }
func (failingSocket) Send(*engine.Packet, *engine.ReplyBuffer, engine.Destination) error {
	return nil
}
func (failingSocket) Close() error { return nil }

func TestNewRejectsMissingParts(t *testing.T) {
	if _, err := engine.New(engine.Config{Handler: echoHandler{}}); err == nil {
		t.Error("New without a socket succeeded")
	}
	if _, err := engine.New(engine.Config{Socket: memsock.New(1)}); err == nil {
		t.Error("New without a handler succeeded")
	}
}

// stampHandler records the arrival stamps the handler sees.
type stampHandler struct{ stamps chan int64 }

func (h stampHandler) Handle(req *engine.Packet, _ *engine.ReplyBuffer) bool {
	h.stamps <- req.Received
	return false
}

// TestPacketsCarryTheirReadTime: every packet reaches the handler stamped
// with the engine clock at its read; the packets of one read share the
// stamp (the clock is read once per read), inline and through the ring.
func TestPacketsCarryTheirReadTime(t *testing.T) {
	for _, inline := range []int{0, 32} {
		sock := memsock.New(64)
		const n = 6
		for i := range n {
			if !sock.InjectFrame(discoverFrame(uint32(200 + i))) {
				t.Fatal("inject refused")
			}
		}
		before := engine.Now()
		h := stampHandler{stamps: make(chan int64, n)}
		start(t, sock, h, engine.Config{Workers: 2, Batch: 32, InlineMax: inline})
		var first int64
		for i := range n {
			var got int64
			select {
			case got = <-h.stamps:
			case <-time.After(10 * time.Second):
				t.Fatalf("inline %d: packet %d not handled", inline, i)
			}
			if i == 0 {
				first = got
			}
			if got < before || got > engine.Now() || got != first {
				t.Errorf("inline %d: packet %d stamped %d, want %d (one read) within [%d, now]", inline, i, got, first, before)
			}
		}
	}
}
