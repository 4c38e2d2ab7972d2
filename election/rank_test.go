package election

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

func testMembers(n int, weight func(i int) uint8) []*member {
	ms := make([]*member, n)
	for i := range ms {
		id := AgentID(1000 + i)
		w := uint8(50)
		if weight != nil {
			w = weight(i)
		}
		m := &member{id: id, seed: mix64(uint64(id)), interval: time.Second, liveUntil: math.MaxInt64, switchAt: math.MaxInt64}
		m.now = newLoadState(wire.Load{Weight: w})
		ms[i] = m
	}
	return ms
}

func mac(i int) [6]byte { return [6]byte{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }

func TestRankAgreesWithPositionAndOrder(t *testing.T) {
	ms := testMembers(50, func(i int) uint8 { return uint8(1 + i%99) })
	ms[3].images = []uint64{42}
	ms[7].images = []uint64{42}
	shuffled := slices.Clone(ms)
	slices.Reverse(shuffled)
	var r Ranker
	for c := 0; c < 200; c++ {
		for _, image := range []uint64{0, 42} {
			a := r.rank(nil, ms, 0, mac(c), image)
			b := r.rank(nil, shuffled, 0, mac(c), image)
			if !slices.Equal(a, b) {
				t.Fatalf("client %d: ranking depends on member order", c)
			}
			if image == 42 && !(a[0] == ms[3].id || a[0] == ms[7].id) {
				t.Fatalf("client %d: first is %d, not a holder of the image", c, a[0])
			}
			for pos, id := range a {
				self := ms[id-1000]
				if got := position(ms, self, 0, 0, 0, mac(c), image, len(ms)); got != pos {
					t.Fatalf("client %d: agent %d is at %d in the ranking but position says %d", c, id, pos, got)
				}
			}
		}
	}
}

func TestPositionPinnedFirstAndIneligible(t *testing.T) {
	ms := testMembers(10, nil)
	var r Ranker
	order := r.rank(nil, ms, 0, mac(1), 0)
	pinned := order[5]
	for pos, id := range order {
		self := ms[id-1000]
		want := pos + 1
		switch {
		case id == pinned:
			want = 0
		case pos > 5:
			want = pos
		}
		if got := position(ms, self, pinned, 0, 0, mac(1), 0, 100); got != want {
			t.Fatalf("agent at rank %d: position with pin = %d, want %d", pos, got, want)
		}
	}
	ms[0].now.weight = 0
	if got := position(ms, ms[0], 0, 0, 0, mac(1), 0, 100); got != -1 {
		t.Fatalf("weight 0 agent has position %d, want -1", got)
	}
	ms[1].liveUntil = 10
	if got := position(ms, ms[1], 0, 0, 11, mac(1), 0, 100); got != -1 {
		t.Fatalf("silent agent has position %d, want -1", got)
	}
}

// TestHashAloneMissesTheShareWith200Agents: rendezvous hashing of 10,000
// clients over 200 equal agents gives each Binomial(10000, 1/200) = 50 +- 7
// clients, so some of them always end outside +-20% of 50: why the
// election balances (see balancer and the simulated subnet's
// TestEqualAgentsShareEvenly).
func TestHashAloneMissesTheShareWith200Agents(t *testing.T) {
	const agents, clients = 200, 10_000
	ms := testMembers(agents, nil)
	wins := make([]int, agents)
	var r Ranker
	dst := make([]AgentID, 0, agents)
	for c := 0; c < clients; c++ {
		dst = r.rank(dst[:0], ms, 0, mac(c), 0)
		wins[dst[0]-1000]++
	}
	fair := float64(clients) / agents
	outside := 0
	for _, w := range wins {
		if math.Abs(float64(w)-fair) > 0.20*fair {
			outside++
		}
	}
	t.Logf("hash alone: min %d, max %d of a fair %v; %d of %d agents outside +-20%%", slices.Min(wins), slices.Max(wins), fair, outside, agents)
	if outside < 10 {
		t.Fatalf("only %d of %d agents outside +-20%%: the ranking is not the independent per-client draw it is meant to be", outside, agents)
	}
}

func TestLoadLowersShare(t *testing.T) {
	ms := testMembers(2, nil)
	ms[1].now = newLoadState(wire.Load{Weight: 50, Transfers: 7}) // level 3: a quarter
	var r Ranker
	wins := 0
	const clients = 20000
	for c := 0; c < clients; c++ {
		if r.rank(nil, ms, 0, mac(c), 0)[0] == ms[1].id {
			wins++
		}
	}
	// Weighted HRW: share = w1/(w0+w1) = 12.5/62.5 = 20%.
	if share := float64(wins) / clients; share < 0.17 || share > 0.23 {
		t.Fatalf("loaded agent wins %.3f of clients, want about 0.20", share)
	}
}

func TestLoadLevel(t *testing.T) {
	tests := []struct {
		transfers uint32
		bps       uint64
		want      int
	}{
		{0, 0, 0}, {1, 0, 1}, {3, 0, 2}, {4, 0, 3}, {0, 1 << 20, 1}, {0, 100 << 20, 7}, {2, 100 << 20, 7}, {1000, 0, 10},
	}
	for _, tt := range tests {
		if got := LoadLevel(tt.transfers, tt.bps); got != tt.want {
			t.Errorf("LoadLevel(%d, %d) = %d, want %d", tt.transfers, tt.bps, got, tt.want)
		}
	}
}

func TestRankingAllocatesNothing(t *testing.T) {
	ms := testMembers(200, nil)
	var r Ranker
	dst := make([]AgentID, 0, 200)
	r.rank(dst, ms, 0, mac(1), 0) // size the scratch space
	c := 0
	allocs := testing.AllocsPerRun(100, func() {
		c++
		dst = r.rank(dst[:0], ms, 0, mac(c), 0)
		_ = position(ms, ms[c%200], 0, 0, 0, mac(c), 0, 200)
	})
	if allocs != 0 {
		t.Fatalf("ranking one client among 200 members allocates %v times", allocs)
	}
	if len(dst) != 200 {
		t.Fatalf("ranked %d members, want 200", len(dst))
	}
}

func BenchmarkRank200(b *testing.B) {
	ms := testMembers(200, nil)
	var r Ranker
	dst := make([]AgentID, 0, 200)
	b.ReportAllocs()
	c := 0
	for b.Loop() {
		c++
		dst = r.rank(dst[:0], ms, 0, mac(c), 0)
	}
}

func BenchmarkPosition200(b *testing.B) {
	ms := testMembers(200, nil)
	b.ReportAllocs()
	c := 0
	for b.Loop() {
		c++
		_ = position(ms, ms[c%200], 0, 0, 0, mac(c), 0, 200)
	}
}

func BenchmarkPositionBounded200(b *testing.B) {
	ms := testMembers(200, nil)
	b.ReportAllocs()
	c := 0
	for b.Loop() {
		c++
		_ = position(ms, ms[c%200], 0, 0, 0, mac(c), 0, DefaultFailoverDepth)
	}
}

func TestLoadSwitchesAtTheEpochBoundary(t *testing.T) {
	m := &member{liveUntil: math.MaxInt64, switchAt: 1000}
	m.now = newLoadState(wire.Load{Weight: 0})
	m.next = newLoadState(wire.Load{Weight: 40, Transfers: 1})
	if m.eligible(999) {
		t.Fatal("eligible before the boundary with weight 0 in force")
	}
	if !m.eligible(1000) || m.load(1000).eff != 20 {
		t.Fatalf("after the boundary: eligible %v, effective weight %v, want true, 20", m.eligible(1000), m.load(1000).eff)
	}
}
