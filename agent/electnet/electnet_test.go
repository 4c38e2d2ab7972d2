package electnet

import (
	"net/netip"
	"os"
	"testing"
	"time"
)

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.77.11/24": "198.18.77.255",
		"198.18.0.0/15":   "198.19.255.255",
		"198.18.77.9/30":  "198.18.77.11",
		"198.18.77.9/32":  "198.18.77.9",
	} {
		if got := Broadcast(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("Broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

// Two agents' sockets on one host share the election port and hear each
// other's broadcasts (on loopback: 127.255.255.255).
func TestTwoTransportsHearEachOther(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("SO_BINDTODEVICE needs root (CI runs as root)")
	}
	sub := netip.MustParsePrefix("127.0.0.0/8")
	a, err := Listen("lo", sub, 42012)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen("lo", sub, 42012)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := b.Recv(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	if err := a.Send([]byte("heartbeat")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "heartbeat" {
			t.Fatalf("received %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("broadcast not received")
	}
	b.Close()
	for range got {
	}
}
