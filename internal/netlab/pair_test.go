package netlab

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestPairTalksDirectlyAndCleansUp(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("lab not available: %v (the suite runs as root with iproute2)", err)
	}
	for _, bad := range [][5]string{
		{"10.0.0.0/24", "a", "10.0.0.1", "b", "10.0.0.2"},             // outside 198.18.0.0/15
		{"198.18.201.0/24", "a", "198.18.202.1", "b", ""},             // address outside the subnet
		{"198.18.201.0/24", "a", "198.18.201.1", "a", "198.18.201.2"}, // one name twice
	} {
		if p, err := NewPair(bad[0], bad[1], bad[2], bad[3], bad[4]); err == nil {
			p.Close()
			t.Errorf("NewPair%q succeeded, want an error", bad)
		}
	}
	p, err := NewPair("198.18.201.0/24", "srv", "198.18.201.1", "cli", "198.18.201.2")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.A.MAC == "" || p.B.MAC == "" || p.A.MAC == p.B.MAC {
		t.Fatalf("MACs %q and %q", p.A.MAC, p.B.MAC)
	}
	// Nothing but the veth end in each namespace: no bridge in between.
	for _, h := range []*Host{p.A, p.B} {
		out, err := exec.Command("ip", "-n", h.NS, "-br", "link", "show").Output()
		if err != nil {
			t.Fatal(err)
		}
		if s := string(out); !strings.Contains(s, "eth0@") || strings.Contains(s, "br0") {
			t.Fatalf("%s links: %s", h.NS, s)
		}
	}
	if err := sayHello(p.A, p.B, net.IPv4(198, 18, 201, 1), net.IPv4(198, 18, 201, 2)); err != nil {
		t.Fatal(err)
	}
	cmd := p.B.Command(context.Background(), "sleep", "300")
	if err := p.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err == nil {
		t.Error("the process in the pair is still alive after Close")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, h := range []*Host{p.A, p.B} {
		if strings.Contains(string(out), h.NS) {
			t.Errorf("namespace %s left behind", h.NS)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
