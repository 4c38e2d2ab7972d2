package election

import (
	"math"

	"github.com/peerboot/peerboot/election/wire"
	"math/bits"
	"net/netip"
	"slices"
	"time"
)

// AgentID identifies an agent on the subnet.
type AgentID uint64

// ClientKey identifies a PXE client: its MAC, and its SMBIOS GUID when the
// client sent one. Ranking uses the MAC only.
type ClientKey struct {
	MAC     [6]byte
	HasGUID bool
	GUID    [16]byte
}

// member is one agent of the view, as its last heartbeat described it.
type member struct {
	id        AgentID
	seed      uint64    // mix64(id), the agent's rendezvous salt
	now, next loadState // weight and load in force, and from switchAt on
	prev      loadState // in force during the epoch before now's
	switchAt  int64     // Unix ns: the next load epoch boundary
	epoch     int64     // ns: the member's load epoch
	interval  time.Duration
	lastSeen  time.Time
	liveUntil int64 // Unix ns: lastSeen + MissedHeartbeats intervals
	addr      netip.Addr
	images    []uint64 // sorted image hashes
}

// loadState is an announced weight, load and balance, and the weights
// derived from them.
type loadState struct {
	weight      uint8
	transfers   uint32
	bytesPerSec uint64
	balance     int16
	base        float64 // weight scaled by load: the share intended
	eff         float64 // base scaled by the balance: what the ranking uses
}

func newLoadState(l wire.Load) loadState {
	level := LoadLevel(l.Transfers, l.BytesPerSec)
	return loadState{weight: l.Weight, transfers: l.Transfers, bytesPerSec: l.BytesPerSec, balance: l.Balance,
		base: effectiveWeight(l.Weight, l.Transfers, l.BytesPerSec),
		// One division of two exact integers: every agent, whatever its
		// CPU, derives the same float from the same announcement.
		eff: float64(int64(l.Weight)*int64(wire.BalanceOne+int64(l.Balance))) / float64(int64(1+level)*wire.BalanceOne)}
}

// multiplier is the balance as a factor (1 = no adjustment).
func (l *loadState) multiplier() float64 {
	return float64(wire.BalanceOne+int64(l.balance)) / wire.BalanceOne
}

// load is the weight and load in force at now (Unix ns).
func (m *member) load(now int64) *loadState {
	if now >= m.switchAt {
		return &m.next
	}
	if m.epoch > 0 && now < m.switchAt-m.epoch {
		return &m.prev
	}
	return &m.now
}

// setLoads records what a heartbeat announced: now in force during the
// epoch ending at switchAt, next from then on. When the heartbeat opens a
// new epoch, what was in force keeps answering for the epoch before (the
// boundary guard ranks with both sides of a boundary); after a gap, or for
// a member heard for the first time, the epoch before is taken to be like
// this one.
func (m *member) setLoads(now, next loadState, switchAt, epoch int64) {
	switch switchAt {
	case m.switchAt:
	case m.switchAt + epoch:
		m.prev = m.now
	default:
		m.prev = now
	}
	m.now, m.next, m.switchAt, m.epoch = now, next, switchAt, epoch
}

// heard records a heartbeat from m at now.
func (m *member) heard(now time.Time) {
	m.lastSeen = now
	m.liveUntil = now.Add(MissedHeartbeats * m.interval).UnixNano()
}

// live reports whether m was heard within MissedHeartbeats intervals
// (now in Unix ns).
func (m *member) live(now int64) bool { return now <= m.liveUntil }

func (m *member) eligible(now int64) bool {
	return m.eligibleWith(now, now)
}

// eligibleWith reports whether m is live at now and ranks with the
// weight in force at at.
func (m *member) eligibleWith(now, at int64) bool {
	return now <= m.liveUntil && m.load(at).weight > 0
}

func (m *member) holds(image uint64) bool {
	if image == 0 {
		return false
	}
	_, ok := slices.BinarySearch(m.images, image)
	return ok
}

// LoadLevel is the coarse load bucket every agent derives identically from
// a heartbeat: the larger of log2(1+transfers) and log2(1+MiB/s). Coarse
// buckets keep rankings stable while loads wobble.
func LoadLevel(transfers uint32, bytesPerSec uint64) int {
	return max(bits.Len32(transfers), bits.Len64(bytesPerSec>>20))
}

// effectiveWeight is weight / (1 + load level).
func effectiveWeight(weight uint8, transfers uint32, bytesPerSec uint64) float64 {
	return float64(weight) / float64(1+LoadLevel(transfers, bytesPerSec))
}

// mix64 is the SplitMix64 finaliser: a fast, well-mixed 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// macKey is the client's rendezvous key.
func macKey(mac [6]byte) uint64 {
	v := uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
	return mix64(v + 0x9e3779b97f4a7c15)
}

// rankKey orders members for one client: holders of the needed image
// first (tier), then the weighted rendezvous score, then the id.
type rankKey struct {
	tier  int
	score float64
	id    AgentID
}

func (a rankKey) better(b rankKey) bool {
	if a.tier != b.tier {
		return a.tier > b.tier
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// key is m's rank key for client key k needing image (0 = any). The score
// is weighted rendezvous hashing: w / -ln(u), u uniform in (0,1) from the
// client and agent hashes, so each agent wins a share proportional to w.
func (m *member) key(k uint64, image uint64, now int64) rankKey {
	h := mix64(k ^ m.seed)
	u := (float64(h>>11) + 0.5) * (1.0 / (1 << 53))
	rk := rankKey{score: m.load(now).eff / -math.Log(u), id: m.id}
	if m.holds(image) {
		rk.tier = 1
	}
	return rk
}

// Ranker orders the eligible members of a view for a client. It reuses
// its scratch space, so it is not safe for concurrent use.
type Ranker struct {
	scratch []rankedMember
}

type rankedMember struct {
	key rankKey
	m   *member
}

// rank appends the eligible members, best first, to dst.
func (r *Ranker) rank(dst []AgentID, members []*member, now int64, mac [6]byte, image uint64) []AgentID {
	k := macKey(mac)
	r.scratch = r.scratch[:0]
	for _, m := range members {
		if m.eligible(now) {
			r.scratch = append(r.scratch, rankedMember{m.key(k, image, now), m})
		}
	}
	slices.SortFunc(r.scratch, compareRanked)
	for _, rm := range r.scratch {
		dst = append(dst, rm.m.id)
	}
	return dst
}

func compareRanked(a, b rankedMember) int {
	if a.key.better(b.key) {
		return -1
	}
	if b.key.better(a.key) {
		return 1
	}
	return 0
}

// position is self's rank among the eligible members for the client, with
// pinned (if not 0 and eligible) placed first whatever its score. It
// returns -1 if self is not eligible, and stops counting past limit (so a
// low-ranked agent costs a fraction of a full scan).
func position(members []*member, self *member, pinned, skip AgentID, now int64, mac [6]byte, image uint64, limit int) int {
	return positionAt(members, self, pinned, skip, now, now, mac, image, limit)
}

// positionAt is position with members live at now ranked with the
// weights and loads in force at at.
func positionAt(members []*member, self *member, pinned, skip AgentID, now, at int64, mac [6]byte, image uint64, limit int) int {
	if !self.eligibleWith(now, at) {
		return -1
	}
	if pinned == self.id {
		return 0
	}
	k := macKey(mac)
	mine := self.key(k, image, at)
	pos := 0
	for _, m := range members {
		if m == self || m.id == skip || !m.eligibleWith(now, at) {
			continue
		}
		if m.id == pinned || m.key(k, image, at).better(mine) {
			pos++
			if pos > limit {
				return pos
			}
		}
	}
	return pos
}

// best returns the best eligible member holding image, other than those
// in skip.
func best(members []*member, skip []AgentID, now int64, mac [6]byte, image uint64) *member {
	k := macKey(mac)
	var top *member
	var topKey rankKey
	for _, m := range members {
		if slices.Contains(skip, m.id) || !m.eligible(now) || !m.holds(image) {
			continue
		}
		if key := m.key(k, image, now); top == nil || key.better(topKey) {
			top, topKey = m, key
		}
	}
	return top
}
