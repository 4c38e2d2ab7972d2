//go:build knownissue

package reliability

import (
	"testing"
	"time"
)

// This case fails today (see docs/RELIABILITY.md); run it with
//
//	go test -tags knownissue ./reliability

// TestHostileTrafficDefaultGOGC is the hostile flood with the agent's
// default garbage collector setting: garbage from each malformed TFTP
// request (two allocations: the parse error and the log call's boxed
// arguments) piles up to the heap goal before a collection, so RSS rises
// about 40% and then stays flat. It fails the 10% line until that path
// stops allocating.
func TestHostileTrafficDefaultGOGC(t *testing.T) {
	t.Setenv("PEERBOOT_HOSTILE_GOGC", "100")
	if dur := durationSetting(t, "PEERBOOT_HOSTILE_DURATION", 0); dur < 60*time.Second {
		t.Setenv("PEERBOOT_HOSTILE_DURATION", "60s")
	}
	TestHostileTrafficAgainstAgent(t)
}
