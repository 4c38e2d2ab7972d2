package netlab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLabHostsTalkAndCleanUp(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("lab not available: %v (the suite runs as root with iproute2)", err)
	}
	l, err := New("198.18.200.0/24")
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.AddHost("a", "198.18.200.1")
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	b, err := l.AddHost("b", "198.18.200.2")
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	if err := sayHello(a, b, net.IPv4(198, 18, 200, 1), net.IPv4(198, 18, 200, 2)); err != nil {
		l.Close()
		t.Fatal(err)
	}
	// A process started in a namespace is killed by Close.
	cmd := b.Command(context.Background(), "sleep", "300")
	if err := l.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err == nil {
		t.Fatal("process still alive after Close")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), l.Name) {
		t.Fatalf("namespaces of %s remain: %s", l.Name, out)
	}
}

func TestRefusesAddressesOutsideBenchmarkRange(t *testing.T) {
	if _, err := New("10.0.0.0/24"); err == nil {
		t.Fatal("a lab outside 198.18.0.0/15 was allowed")
	}
}

// sayHello sends one datagram from host b to host a (addresses aIP, bIP)
// over real sockets in their namespaces and checks it arrives from bIP.
func sayHello(a, b *Host, aIP, bIP net.IP) error {
	var srv *net.UDPConn
	if err := a.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: aIP, Port: 9999})
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	var cli *net.UDPConn
	if err := b.Do(func() (err error) {
		cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: aIP, Port: 9999})
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := srv.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "hello" || !from.IP.Equal(bIP) {
		return fmt.Errorf("got %q from %v, err %v; want hello from %v", buf[:n], from, err, bIP)
	}
	return nil
}
