package election

import (
	"context"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// benchElector is agent 1 with 49 ready peers in its view.
func benchElector(b *testing.B) (*Elector, *manualClock, *wire.Codec) {
	b.Helper()
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	cfg := fastConfig(1)
	cfg.HeartbeatInterval = time.Minute // no heartbeat timers during the run
	e, err := New(cfg, clk, &capture{})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, _ := wire.NewCodec(testKey)
	load := wire.Load{Weight: 50}
	for id := uint64(2); id <= 50; id++ {
		msg, _ := c.AppendHeartbeat(nil, wire.Header{Subnet: 7, Sender: id, Time: clk.now.UnixMilli(), Nonce: 1},
			&wire.Heartbeat{IntervalMS: 60000, EpochMS: 600000, Now: load, Next: load})
		e.Receive(msg)
	}
	e.mu.Lock()
	e.self.prev, e.self.now, e.self.next = newLoadState(load), newLoadState(load), newLoadState(load)
	e.mu.Unlock()
	return e, clk, c
}

// BenchmarkReceiveClaim is the cost of one authentic claim arriving
// (decode, HMAC, replay window, claim table, and the balancing score: each
// claim gives its client a new owner) on a 50-agent subnet.
func BenchmarkReceiveClaim(b *testing.B) {
	e, clk, c := benchElector(b)
	msgs := make([][]byte, 4096)
	batch := 0
	fill := func() { // fresh nonces, and another owner for every client
		for i := range msgs {
			msgs[i] = c.AppendClaim(msgs[i][:0], wire.Header{Subnet: 7, Sender: 2 + uint64((i+batch)%49), Time: clk.now.UnixMilli(), Nonce: uint64(2 + batch*len(msgs) + i)},
				&wire.Claim{Client: wire.Client{MAC: [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}}, HoldMS: 30000})
		}
		batch++
	}
	fill()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(msgs) {
			b.StopTimer()
			fill()
			i = 0
			b.StartTimer()
		}
		e.Receive(msgs[i])
		i++
	}
	if s := e.Stats(); s.ClaimsReceived == 0 || s.DroppedReplay != 0 {
		b.Fatalf("%d claims accepted, %d dropped as replays", s.ClaimsReceived, s.DroppedReplay)
	}
}

// BenchmarkDecide is the cost of one client request on a 50-agent subnet
// (ranking, claim table, and the claim sent when this agent answers), in
// the middle of a load epoch and within the boundary guard's window (where
// each request is ranked with both sides of the boundary first).
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name   string
		offset int // -1: mid-epoch, 1: just after a boundary
	}{{"mid-epoch", -1}, {"boundary-window", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			e, clk, _ := benchElector(b)
			// Every peer was heard now; stay within their liveness.
			epoch := e.Config().LoadEpoch
			boundary := time.Unix(0, clk.now.UnixNano()/int64(epoch)*int64(epoch))
			if bc.offset < 0 {
				clk.now = boundary.Add(-epoch / 2)
			} else {
				clk.now = boundary.Add(e.Config().BoundaryGuard / 4)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				e.Request(ClientKey{MAC: [6]byte{2, 1, 0, byte(i >> 16), byte(i >> 8), byte(i)}}, "", func(Decision) {})
			}
			if s := e.Stats(); s.Served == 0 || s.Deferred == 0 {
				b.Fatalf("%d requests: %d served, %d deferred (the view is not what the benchmark needs)", s.Requests, s.Served, s.Deferred)
			}
		})
	}
}
