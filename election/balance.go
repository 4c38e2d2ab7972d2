package election

import (
	"math"

	"github.com/peerboot/peerboot/election/wire"
)

// Balancing. Rendezvous hashing gives each agent its share of clients only
// on average: with 10,000 clients and 200 equal agents each gets 50 +- 7,
// so some always end far from their share. Every agent therefore keeps
// score of its own luck: for each newly claimed client (a claim that
// changes the client's owner, which every agent hears) it adds its base
// share of that client (what its weight and load entitle it to) to what it
// was due, and 1 to what it won if the claim is its own. At its first
// heartbeat of a load epoch it turns the difference into the balance it
// announces for the next epoch: a weight multiplier that hands it the
// clients it is owed (or gives back those it got too many of) over that
// epoch. The multiplier travels with the weight and load through the
// epoch machinery, so every agent still ranks with identical inputs; only
// the agent itself needs its score, so nothing about it has to agree.

const (
	// balanceGain is the part of the expected deficit made up in one
	// epoch. The deficit already accounts for what the balance in force
	// will return during the current epoch, so the feedback lag (a balance
	// decided now applies from the next boundary) does not make it
	// overshoot; below 1 it damps the noise of the epoch's own draws.
	balanceGain = 0.5
	// minEpochDue floors the clients an agent expects per epoch when
	// sizing its correction, so an epoch without clients asks for a
	// finite share (on a quiet subnet one or two clients owed still take
	// the balance to its bound).
	minEpochDue = 2.0
	// maxDeficitEpochs and maxDeficitClients bound the deficit kept (in
	// epochs of expected clients, plus clients), so a deficit that cannot
	// be made up (the balance at its bound) does not pile up.
	maxDeficitEpochs  = 4.0
	maxDeficitClients = 8.0
)

// balancer is this agent's score: clients due by its base share and
// clients won, since it started (or came back from a silence).
type balancer struct {
	due, won float64
	epochDue float64 // due since the last balance was decided
}

// game records a newly claimed client: due is this agent's base share of
// it, won whether this agent claimed it.
func (b *balancer) game(due float64, won bool) {
	b.due += due
	b.epochDue += due
	if won {
		b.won++
	}
}

// next decides the balance to announce for the next epoch from the score
// and the view (members' weights, loads and balances in force at now). It
// resets the per-epoch count.
func (b *balancer) next(members []*member, self *member, now int64) int16 {
	perEpoch := max(b.epochDue, minEpochDue)
	b.epochDue = 0
	limit := maxDeficitEpochs*perEpoch + maxDeficitClients
	deficit := b.due - b.won
	if deficit > limit || deficit < -limit {
		deficit = math.Copysign(limit, deficit)
		b.due = b.won + deficit
	}
	if !self.eligible(now) {
		return 0
	}
	var selfBase, selfEff, othersBase, othersEff float64
	for _, m := range members {
		if !m.eligible(now) {
			continue
		}
		l := m.load(now)
		if m == self {
			selfBase, selfEff = l.base, l.eff
		} else {
			othersBase += l.base
			othersEff += l.eff
		}
	}
	if selfBase == 0 || othersEff == 0 {
		return 0 // alone: nothing to balance against
	}
	share := selfBase / (selfBase + othersBase) // of a client, by weight and load
	// What the balance in force returns during this epoch, compared with
	// the base share.
	inForce := selfEff / (selfEff + othersEff)
	deficit -= perEpoch * (inForce/share - 1)
	// The share that makes up balanceGain of the rest over one epoch, and
	// the multiplier that gives it against the others' base weights: the
	// others move their balances at the same boundary, so taking theirs in
	// force as fixed would make two agents chase each other's balance
	// (with two agents, the balances flip between the bounds).
	want := min(share*(1+balanceGain*deficit/perEpoch), 0.95)
	mult := want * othersBase / (selfBase * (1 - want))
	if !(mult > 0) { // also NaN
		mult = 0
	}
	adj := math.Round((mult - 1) * wire.BalanceOne)
	return int16(min(max(adj, wire.MinBalance), wire.MaxBalance))
}

// dueShare is self's base share (by weight and load, balances left out)
// of a client needing image among the eligible members: holders of the
// image share it if any is eligible, everybody otherwise.
func dueShare(members []*member, self *member, now int64, image uint64) float64 {
	if !self.eligible(now) {
		return 0
	}
	var all, holders float64
	for _, m := range members {
		if !m.eligible(now) {
			continue
		}
		b := m.load(now).base
		all += b
		if image != 0 && m.holds(image) {
			holders += b
		}
	}
	switch {
	case holders > 0 && !self.holds(image):
		return 0
	case holders > 0:
		return self.load(now).base / holders
	case all > 0:
		return self.load(now).base / all
	}
	return 0
}
