package election

import "time"

// replayWindowSize is how far behind the highest nonce seen from a sender a
// message may arrive (reordered) and still be accepted once.
const replayWindowSize = 128

// replayState is the per-sender sliding window (as in IPsec): the highest
// nonce seen and a bitmap of the replayWindowSize nonces below it. Senders
// start their nonce at their clock in microseconds, so it keeps rising
// across restarts; together with the timestamp check (MaxClockSkew) a
// captured message can never be accepted twice. Memory is fixed per sender.
type replayState struct {
	highest  uint64
	seen     [replayWindowSize / 64]uint64
	lastSeen time.Time
}

// accept records nonce n and reports whether it is new.
func (r *replayState) accept(n uint64) bool {
	switch {
	case n > r.highest:
		shift := n - r.highest
		if shift >= replayWindowSize {
			r.seen = [replayWindowSize / 64]uint64{}
		} else {
			r.shiftLeft(uint(shift))
		}
		r.highest = n
		r.seen[0] |= 1
		return true
	case r.highest-n >= replayWindowSize:
		return false
	default:
		d := r.highest - n
		word, bit := d/64, d%64
		if r.seen[word]&(1<<bit) != 0 {
			return false
		}
		r.seen[word] |= 1 << bit
		return true
	}
}

// shiftLeft moves the bitmap so that bit i becomes bit i+s (s < window).
func (r *replayState) shiftLeft(s uint) {
	words := s / 64
	bitsS := s % 64
	n := len(r.seen)
	for i := n - 1; i >= 0; i-- {
		var v uint64
		if src := i - int(words); src >= 0 {
			v = r.seen[src] << bitsS
			if bitsS != 0 && src-1 >= 0 {
				v |= r.seen[src-1] >> (64 - bitsS)
			}
		}
		r.seen[i] = v
	}
}
