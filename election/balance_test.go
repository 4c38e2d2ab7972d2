package election

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

// TestBalanceFollowsTheScore: among ten equal agents (a base share of
// 1/10), the balance announced gives the share that makes up half the
// expected deficit over one epoch.
func TestBalanceFollowsTheScore(t *testing.T) {
	tests := []struct {
		name      string
		due, won  float64
		epochDue  float64
		inForce   int16 // self's balance in force now
		ineligib  bool
		alone     bool
		wantShare float64 // of a client, against the base share; 0: want balance 0
		wantBal   int16
	}{
		{name: "even score", due: 20, won: 20, epochDue: 2, wantShare: 1},
		{name: "owed two clients", due: 22, won: 20, epochDue: 2, wantShare: 1.5},
		{name: "one client ahead", due: 20, won: 21, epochDue: 2, wantShare: 0.75},
		{name: "owed many", due: 100, won: 20, epochDue: 2, wantBal: wire.MaxBalance},
		{name: "far ahead", due: 20, won: 100, epochDue: 2, wantBal: wire.MinBalance},
		// The balance in force (x1.5: a share of 1.5/10.5, 1.43 times the
		// base) returns 0.86 of the two clients owed during this epoch;
		// half the remaining 1.14 over the next epoch of 2 is a share of
		// 1.29 times the base.
		{name: "owed two, some returning now", due: 22, won: 20, epochDue: 2, inForce: 512, wantShare: 1 + 0.5*(2-2*(1.5/10.5/0.1-1))/2},
		// A quiet epoch counts as two clients: owed one, half of it made
		// up over the next two.
		{name: "owed one, quiet subnet", due: 21, won: 20, epochDue: 0, wantShare: 1.25},
		{name: "not eligible", due: 30, won: 20, epochDue: 2, ineligib: true, wantBal: 0},
		{name: "alone", due: 30, won: 20, epochDue: 2, alone: true, wantBal: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := testMembers(10, nil)
			if tt.alone {
				ms = ms[:1]
			}
			self := ms[0]
			self.now = newLoadState(wire.Load{Weight: 50, Balance: tt.inForce})
			if tt.ineligib {
				self.now = newLoadState(wire.Load{})
			}
			b := balancer{due: tt.due, won: tt.won, epochDue: tt.epochDue}
			got := b.next(ms, self, 0)
			if b.epochDue != 0 {
				t.Fatalf("the epoch's due count was not reset: %v", b.epochDue)
			}
			if tt.wantShare == 0 {
				if got != tt.wantBal {
					t.Fatalf("balance %d, want %d", got, tt.wantBal)
				}
				return
			}
			// The share of a client this balance gives, nine others at 1.
			m := float64(wire.BalanceOne+int(got)) / wire.BalanceOne
			share := m * 0.1 / (m*0.1 + 0.9) / 0.1
			if math.Abs(share-tt.wantShare) > 0.002 {
				t.Fatalf("balance %d gives %.4f times the base share, want %.4f", got, share, tt.wantShare)
			}
		})
	}
}

func TestBalanceDeficitIsBounded(t *testing.T) {
	ms := testMembers(4, nil)
	b := balancer{due: 1000, won: 0, epochDue: 2}
	if got := b.next(ms, ms[0], 0); got != wire.MaxBalance {
		t.Fatalf("balance %d, want the maximum", got)
	}
	// At most maxDeficitEpochs epochs of clients plus maxDeficitClients.
	if d := b.due - b.won; d != maxDeficitEpochs*2+maxDeficitClients {
		t.Fatalf("deficit kept %v, want %v", d, maxDeficitEpochs*2+maxDeficitClients)
	}
	b = balancer{due: 0, won: 1000, epochDue: 0}
	b.next(ms, ms[0], 0)
	if d := b.due - b.won; d != -(maxDeficitEpochs*minEpochDue + maxDeficitClients) {
		t.Fatalf("surplus kept %v", d)
	}
}

func TestDueShare(t *testing.T) {
	ms := testMembers(5, func(i int) uint8 { return uint8(10 * (i + 1)) }) // 10..50, total 150
	ms[1].images = []uint64{7}
	ms[3].images = []uint64{7}
	ms[4].now = newLoadState(wire.Load{Weight: 50, Transfers: 1}) // load level 1: base 25, total 125
	tests := []struct {
		self  int
		image uint64
		want  float64
	}{
		{0, 0, 10.0 / 125}, {4, 0, 25.0 / 125},
		{1, 7, 20.0 / 60}, {3, 7, 40.0 / 60}, {0, 7, 0}, // holders of 7 share it
		{2, 9, 30.0 / 125}, // nobody holds 9: everybody shares
	}
	for _, tt := range tests {
		if got := dueShare(ms, ms[tt.self], 0, tt.image); got != tt.want {
			t.Errorf("agent %d, image %d: share %v, want %v", tt.self, tt.image, got, tt.want)
		}
	}
	ms[2].now = newLoadState(wire.Load{})
	if got := dueShare(ms, ms[2], 0, 0); got != 0 {
		t.Errorf("weight 0: share %v, want 0", got)
	}
}

// TestEffectiveWeightIsExact: the balance scales the weight without
// rounding differences (a balance of 0 gives the same float as no
// balance at all, a balance of +1024 exactly twice it), so agents agree
// bit for bit.
func TestEffectiveWeightIsExact(t *testing.T) {
	for w := 0; w <= 99; w++ {
		for transfers := uint32(0); transfers < 1<<20; transfers = transfers*2 + 1 {
			l := newLoadState(wire.Load{Weight: uint8(w), Transfers: transfers})
			if l.eff != l.base || l.base != float64(w)/float64(1+LoadLevel(transfers, 0)) {
				t.Fatalf("weight %d, %d transfers: eff %v, base %v", w, transfers, l.eff, l.base)
			}
			if d := newLoadState(wire.Load{Weight: uint8(w), Transfers: transfers, Balance: wire.BalanceOne}); d.eff != 2*l.base {
				t.Fatalf("weight %d, %d transfers: doubled eff %v, want %v", w, transfers, d.eff, 2*l.base)
			}
		}
	}
}

// TestClaimsKeepTheScore: every claim that makes a new owner counts the
// agent's share as due, its own claims count as won, repeated copies and
// refreshes count nothing; the score becomes the balance it announces.
func TestClaimsKeepTheScore(t *testing.T) {
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	tr := &capture{}
	e, err := New(fastConfig(1), clk, tr) // heartbeat 100 ms, load epoch 1 s
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, _ := wire.NewCodec(testKey)
	nonce := uint64(0)
	send := func(from uint64, f func(h wire.Header) []byte) {
		nonce++
		e.Receive(f(wire.Header{Subnet: 7, Sender: from, Time: clk.now.UnixMilli(), Nonce: nonce}))
	}
	beat := func() {
		for id := uint64(2); id <= 4; id++ {
			send(id, func(h wire.Header) []byte {
				b, _ := c.AppendHeartbeat(nil, h, &wire.Heartbeat{IntervalMS: 100, EpochMS: 1000, Now: wire.Load{Weight: 50}, Next: wire.Load{Weight: 50}})
				return b
			})
		}
	}
	run := func(d time.Duration) {
		for t := time.Duration(0); t < d; t += 50 * time.Millisecond {
			beat()
			clk.Advance(50 * time.Millisecond)
		}
	}
	claim := func(from uint64, mac byte) {
		send(from, func(h wire.Header) []byte {
			return c.AppendClaim(nil, h, &wire.Claim{Client: wire.Client{MAC: [6]byte{2, 0, 0, 0, 0, mac}}, HoldMS: 30000})
		})
	}
	run(2500 * time.Millisecond) // this agent's weight is in force: four equal agents
	if ms := e.Members(); len(ms) != 4 || !ms[0].Ready {
		t.Fatalf("view %+v, want four ready members", ms)
	}
	score := func() (float64, float64) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.bal.due, e.bal.won
	}
	due0, won0 := score()
	claim(2, 1)
	claim(2, 1) // the second copy
	claim(3, 2)
	claim(4, 2) // another agent takes client 2 over: a new owner
	due, won := score()
	if due-due0 != 0.75 || won != won0 {
		t.Fatalf("after three new owners: due +%v, won +%v; want +0.75 (3 x 1/4), +0", due-due0, won-won0)
	}
	// Clients this agent ranks first: each is won, and due a quarter.
	served := 0
	for mac := byte(10); served < 3; mac++ {
		key := ClientKey{MAC: [6]byte{2, 0, 0, 0, 0, mac}}
		if e.Rank(nil, key, "")[0] != e.ID() {
			continue
		}
		if d := e.Decide(context.Background(), key, ""); d.Action != Serve {
			t.Fatalf("first in rank decided %+v", d)
		}
		e.Decide(context.Background(), key, "") // its retry: a refresh, no new game
		served++
	}
	due, won = score()
	if due-due0 != 1.5 || won-won0 != 3 {
		t.Fatalf("after three clients served: due +%v, won +%v; want +1.5, +3", due-due0, won-won0)
	}
	// 1.5 clients ahead: the next epoch's balance is below 1, announced
	// at the first heartbeat of the coming epoch and in force one later.
	tr.msgs = nil
	run(1100 * time.Millisecond)
	var m wire.Message
	announced := false
	for _, msg := range tr.msgs {
		if c.Decode(msg, &m) == nil && m.Type == wire.TypeHeartbeat && m.Heartbeat.Next.Balance < 0 {
			announced = true
		}
	}
	if !announced {
		t.Fatal("no heartbeat announced a balance below 1 for the next epoch")
	}
	run(1000 * time.Millisecond)
	for _, mb := range e.Members() {
		if mb.Self && !(mb.Balance < 1 && mb.Balance >= 0.5) {
			t.Fatalf("balance in force %v, want below 1", mb.Balance)
		}
	}
}

// BenchmarkDueShare200 is the balancing's cost per newly claimed client
// on a 200-agent subnet: this agent's base share of it.
func BenchmarkDueShare200(b *testing.B) {
	ms := testMembers(200, nil)
	b.ReportAllocs()
	c := 0
	for b.Loop() {
		c++
		_ = dueShare(ms, ms[c%200], 0, 0)
	}
}
