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
	e.self.now, e.self.next = newLoadState(load), newLoadState(load)
	e.mu.Unlock()
	return e, clk, c
}

// BenchmarkReceiveClaim is the cost of one authentic claim arriving
// (decode, HMAC, replay window, claim table) on a 50-agent subnet.
func BenchmarkReceiveClaim(b *testing.B) {
	e, clk, c := benchElector(b)
	msgs := make([][]byte, 4096)
	for i := range msgs {
		msgs[i] = c.AppendClaim(nil, wire.Header{Subnet: 7, Sender: 2 + uint64(i%49), Time: clk.now.UnixMilli(), Nonce: uint64(2 + i)},
			&wire.Claim{Client: wire.Client{MAC: [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}}, HoldMS: 30000})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Receive(msgs[i%len(msgs)])
		i++
	}
	if s := e.Stats(); s.ClaimsReceived == 0 {
		b.Fatal("no claim accepted")
	}
}

// BenchmarkDecide is the cost of one client request on a 50-agent subnet
// (ranking, claim table, and the claim sent when this agent answers).
func BenchmarkDecide(b *testing.B) {
	e, _, _ := benchElector(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		e.Request(ClientKey{MAC: [6]byte{2, 1, 0, byte(i >> 16), byte(i >> 8), byte(i)}}, "", func(Decision) {})
	}
}
