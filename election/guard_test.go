package election

import (
	"math"
	"testing"
	"time"

	"github.com/peerboot/peerboot/election/wire"
)

const (
	testEpoch = int64(4 * time.Second)
	testGuard = int64(500 * time.Millisecond)
	testB     = 100 * testEpoch // a boundary
)

// boundaryMembers are n agents whose weights switch at testB from old(i)
// to new(i), as heard from heartbeats sent before the boundary.
func boundaryMembers(n int, old, new func(i int) uint8) []*member {
	ms := testMembers(n, nil)
	for i, m := range ms {
		m.setLoads(newLoadState(wire.Load{Weight: old(i)}), newLoadState(wire.Load{Weight: new(i)}), testB, testEpoch)
	}
	return ms
}

// disagreeing finds a client whose first in rank differs across testB,
// and returns it with the old and new first.
func disagreeing(t *testing.T, ms []*member) (c int, a, b *member) {
	t.Helper()
	var r Ranker
	for c := 0; c < 10000; c++ {
		o := r.rank(nil, ms, testB-1, mac(c), 0)
		n := r.rank(nil, ms, testB, mac(c), 0)
		if o[0] != n[0] {
			return c, ms[o[0]-1000], ms[n[0]-1000]
		}
	}
	t.Fatal("no client changes its first across the boundary")
	return
}

// TestBoundaryGuardOrdersBothSides: near a boundary where the two
// rankings put different agents first, the old first answers at once
// only before b + guard/2, the new first only after b + guard, and
// nobody else is first anywhere in the window; outside the window, or
// when both sides agree, the guard stays out of the way.
func TestBoundaryGuardOrdersBothSides(t *testing.T) {
	ms := boundaryMembers(20, func(i int) uint8 { return uint8(10 + 4*i) }, func(i int) uint8 { return uint8(90 - 4*i) })
	c, a, b := disagreeing(t, ms)
	first := func(now int64) (atOnce []*member, waiting *member) {
		at, newFirst := boundaryView(ms, 0, now, testEpoch, testGuard, mac(c), 0)
		for _, m := range ms {
			if m == newFirst {
				continue
			}
			if positionAt(ms, m, 0, 0, now, at, mac(c), 0, DefaultFailoverDepth) == 0 {
				atOnce = append(atOnce, m)
			}
		}
		return atOnce, newFirst
	}
	for _, tc := range []struct {
		name    string
		now     int64
		atOnce  *member // nil: nobody
		waiting *member
	}{
		{"before the window", testB - testGuard - 1, a, nil},
		{"window start", testB - testGuard, a, b},
		{"just before the boundary", testB - 1, a, b},
		{"just after the boundary", testB, a, b},
		{"before guard/2", testB + testGuard/2 - 1, a, b},
		{"from guard/2", testB + testGuard/2, nil, b},
		{"window end", testB + testGuard, nil, b},
		{"after the window", testB + testGuard + 1, b, nil},
	} {
		atOnce, waiting := first(tc.now)
		if waiting != tc.waiting {
			t.Errorf("%s: the waiting new first is %v, want %v", tc.name, waiting, tc.waiting)
		}
		want := 0
		if tc.atOnce != nil {
			want = 1
		}
		if len(atOnce) != want || (want == 1 && atOnce[0] != tc.atOnce) {
			t.Errorf("%s: %d agents answer at once (%v), want %v", tc.name, len(atOnce), atOnce, tc.atOnce)
		}
	}
	// A client both sides agree on is not the guard's business.
	var r Ranker
	for c := 0; c < 1000; c++ {
		if r.rank(nil, ms, testB-1, mac(c), 0)[0] == r.rank(nil, ms, testB, mac(c), 0)[0] {
			if at, nf := boundaryView(ms, 0, testB, testEpoch, testGuard, mac(c), 0); nf != nil || at != testB {
				t.Fatalf("client %d: both sides agree, yet the guard ranks at %d with new first %v", c, at, nf)
			}
			break
		}
	}
}

// TestBoundaryGuardWithClocksApart: agents whose clocks differ by less
// than guard/2 never have two of them answer one request at once, at any
// instant around the boundary; without the guard (ranking by each one's
// own clock) they do.
func TestBoundaryGuardWithClocksApart(t *testing.T) {
	ms := boundaryMembers(20, func(i int) uint8 { return uint8(10 + 4*i) }, func(i int) uint8 { return uint8(90 - 4*i) })
	c, a, b := disagreeing(t, ms)
	skew := testGuard/2 - 1
	clock := func(m *member) int64 { // a runs behind, b ahead, the rest on time
		switch m {
		case a:
			return -skew / 2
		case b:
			return skew / 2
		}
		return 0
	}
	guardedDoubles, plainDoubles := 0, 0
	for instant := testB - 2*testGuard; instant <= testB+2*testGuard; instant += int64(time.Millisecond) {
		guarded, plain := 0, 0
		for _, m := range ms {
			now := instant + clock(m)
			at, newFirst := boundaryView(ms, 0, now, testEpoch, testGuard, mac(c), 0)
			if m != newFirst && positionAt(ms, m, 0, 0, now, at, mac(c), 0, DefaultFailoverDepth) == 0 {
				guarded++
			}
			if position(ms, m, 0, 0, now, mac(c), 0, DefaultFailoverDepth) == 0 {
				plain++
			}
		}
		if guarded > 1 {
			guardedDoubles++
		}
		if plain > 1 {
			plainDoubles++
		}
	}
	if guardedDoubles != 0 {
		t.Fatalf("with the guard, two agents answer at once for %d ms around the boundary", guardedDoubles)
	}
	// Without the guard b switches first (its clock is ahead) while a
	// has not yet: both answer at once for the skew.
	if want := int((skew + int64(time.Millisecond) - 1) / int64(time.Millisecond)); plainDoubles < want-1 || plainDoubles > want+1 {
		t.Fatalf("without the guard, two agents answer at once for %d ms around the boundary, want about %d (the skew)", plainDoubles, want)
	}
}

// TestLoadKeepsTheEpochBefore: once a heartbeat of the new epoch has
// arrived, the loads of the epoch before still answer for instants before
// the boundary (the guard ranks with both sides); a member heard for the
// first time, or after a gap, has the epoch before taken as like this one.
func TestLoadKeepsTheEpochBefore(t *testing.T) {
	m := &member{liveUntil: math.MaxInt64}
	w := func(x uint8) loadState { return newLoadState(wire.Load{Weight: x}) }
	m.setLoads(w(10), w(20), testB, testEpoch) // first heard
	if got := m.load(testB - testEpoch - 1).weight; got != 10 {
		t.Fatalf("first heard: weight %d before its epoch, want 10 (taken as this one)", got)
	}
	m.setLoads(w(20), w(30), testB+testEpoch, testEpoch) // the next epoch's heartbeat
	for _, tc := range []struct {
		at   int64
		want uint8
	}{{testB - 1, 10}, {testB, 20}, {testB + testEpoch - 1, 20}, {testB + testEpoch, 30}} {
		if got := m.load(tc.at).weight; got != tc.want {
			t.Errorf("weight at %d = %d, want %d", tc.at, got, tc.want)
		}
	}
	m.setLoads(w(20), w(30), testB+testEpoch, testEpoch) // same epoch again
	if got := m.load(testB - 1).weight; got != 10 {
		t.Fatalf("a second heartbeat of the epoch lost the epoch before: %d", got)
	}
	m.setLoads(w(40), w(40), testB+5*testEpoch, testEpoch) // after a gap
	if got := m.load(testB + 4*testEpoch - 1).weight; got != 40 {
		t.Fatalf("after a gap: weight %d before the epoch, want 40 (taken as this one)", got)
	}
}

func TestBoundaryGuardAllocatesNothing(t *testing.T) {
	ms := boundaryMembers(200, func(i int) uint8 { return uint8(10 + i%80) }, func(i int) uint8 { return uint8(90 - i%80) })
	c := 0
	allocs := testing.AllocsPerRun(100, func() {
		c++
		at, _ := boundaryView(ms, 0, testB+int64(c)*int64(time.Millisecond), testEpoch, testGuard, mac(c), 0)
		_ = positionAt(ms, ms[c%200], 0, 0, testB, at, mac(c), 0, DefaultFailoverDepth)
	})
	if allocs != 0 {
		t.Fatalf("the guarded ranking of one client among 200 members allocates %v times", allocs)
	}
}

func BenchmarkBoundaryView200(b *testing.B) {
	ms := boundaryMembers(200, func(i int) uint8 { return uint8(10 + i%80) }, func(i int) uint8 { return uint8(90 - i%80) })
	b.ReportAllocs()
	c := 0
	for b.Loop() {
		c++
		_, _ = boundaryView(ms, 0, testB, testEpoch, testGuard, mac(c), 0)
	}
}
