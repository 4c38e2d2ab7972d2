package agent

import (
	"net/netip"
	"testing"
)

func TestBroadcastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.77.11/24": "198.18.77.255",
		"198.18.0.0/15":   "198.19.255.255",
		"198.18.77.9/30":  "198.18.77.11",
		"198.18.77.9/32":  "198.18.77.9",
	} {
		if got := broadcastAddr(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("broadcastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
