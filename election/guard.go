package election

// Boundary guard. Weights, loads and balances switch at load-epoch
// boundaries, and every agent switches when its own clock passes the
// boundary. Agents whose clocks differ by d rank a client two ways for d
// around each boundary; when the two rankings put different agents first,
// both may answer at once (or neither, and two second ranks answer one
// ElectionWait later). The guard closes that gap. Within Guard of a
// boundary b (by the agent's own clock) an agent ranks the client with
// both sides of b. If both put the same agent first, nothing changes. If
// they differ (old first A, new first B):
//
//   - every agent ranks with the old side until b + Guard/2 and with the
//     new side from then on (not from b), so A answers at once until
//     b + Guard/2 by its clock;
//   - B does not answer at once anywhere in the window: it waits 3/4 of an
//     ElectionWait and answers unless a claim arrived (A's first copy, or
//     its second copy sent ElectionWait/2 after the first). The others wait
//     their turn (k x ElectionWait) as usual, so B's claim reaches them
//     first.
//
// A answers at once only before b + Guard/2 by its clock, B only after
// b + Guard by its own: both at once takes clocks more than Guard/2 apart.
// A client in the window costs at most 3/4 of an ElectionWait.

// guardWaitQuarters is how long the new first waits inside the window, in
// quarters of ElectionWait: after the old first's second claim copy
// (ElectionWait/2), before the second rank's turn (ElectionWait).
const guardWaitQuarters = 3

// boundaryView returns the load time to rank a client with at now (Unix
// ns) and, when now lies within guard of a load-epoch boundary (a multiple
// of epoch) and the two sides of it put different agents first, the new
// first (nil otherwise), which must wait instead of answering at once.
// Pins are not its business: the caller ranks a pinned client as usual.
// It allocates nothing.
func boundaryView(members []*member, skip AgentID, now, epoch, guard int64, mac [6]byte, image uint64) (at int64, newFirst *member) {
	if guard <= 0 || epoch <= 0 || now < 0 {
		return now, nil
	}
	b := (now + epoch/2) / epoch * epoch // the nearest boundary
	if now < b-guard || now > b+guard {
		return now, nil
	}
	before, after := b-1, b
	k := macKey(mac)
	var firstOld, firstNew *member
	var keyOld, keyNew rankKey
	for _, m := range members {
		if m.id == skip || !m.live(now) {
			continue
		}
		if m.load(before).weight > 0 {
			if key := m.key(k, image, before); firstOld == nil || key.better(keyOld) {
				firstOld, keyOld = m, key
			}
		}
		if m.load(after).weight > 0 {
			if key := m.key(k, image, after); firstNew == nil || key.better(keyNew) {
				firstNew, keyNew = m, key
			}
		}
	}
	if firstOld == nil || firstNew == nil || firstOld == firstNew {
		return now, nil
	}
	if now < b+guard/2 {
		return before, firstNew
	}
	return after, firstNew
}
