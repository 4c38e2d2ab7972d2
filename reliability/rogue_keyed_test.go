package reliability

import (
	"fmt"
	"testing"
)

// An agent holding the site key that claims every client and never
// answers: the election stops trusting a claimer once the client has
// retried twice while pinned to it (election: distrust), so clients boot
// from an honest agent after a retry or two.

// TestRogueInsiderClaimingEverythingStrandsNoClient: an agent holding the
// site key (a stolen key, or a broken agent) announces weight 99, claims
// every client at once with the longest hold, and never answers. Clients
// must still boot from an honest agent, at the latest after a few
// DISCOVER retries.
func TestRogueInsiderClaimingEverythingStrandsNoClient(t *testing.T) {
	out := runWithRogue(t, electionKey, 2000, 5)
	if !out.rogueInView {
		t.Fatal("the keyed rogue never entered the view: the test did not set up the attack")
	}
	if out.booted != out.clients {
		t.Fatal(rogueInsiderReport(out))
	}
}

func rogueInsiderReport(out rogueOutcome) string {
	stranded := out.clients - out.booted
	return fmt.Sprintf("%d of %d clients stranded after 5 DISCOVERs 4 s apart (%d booted at the first try)", stranded, out.clients, out.firstTry)
}

// TestRealAgentsNotStrandedByKeyedRogue is the insider rogue against two real
// agents over UDP 2012, with the key derived from the enrollment key.
func TestRealAgentsNotStrandedByKeyedRogue(t *testing.T) {
	const clients = 8
	booted, _ := runRealRogue(t, "198.18.124.0/24", siteKeyOf, clients)
	if booted != clients {
		t.Fatalf("%d of %d clients booted with a keyed rogue claiming them all", booted, clients)
	}
}
