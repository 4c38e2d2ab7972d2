package rawsock_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/filter"
	"github.com/peerboot/peerboot/engine/internal/enginetest"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/internal/netlab"
)

var servedPorts = []uint16{67, 4011, 2067}

func openIn(t *testing.T, h *netlab.Host, cfg rawsock.Config) *rawsock.Socket {
	t.Helper()
	var s *rawsock.Socket
	if err := h.Do(func() (err error) {
		s, err = rawsock.Open(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readUntil reads frames from s until one carries marker as UDP payload,
// and returns every frame read before it as "dstport:payload".
func readUntil(t *testing.T, s *rawsock.Socket, marker string) []string {
	t.Helper()
	type result struct {
		got []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		pkts := make([]*engine.Packet, 8)
		for i := range pkts {
			pkts[i] = new(engine.Packet)
		}
		var got []string
		for {
			n, err := s.ReadBatch(pkts)
			if err != nil {
				done <- result{got, err}
				return
			}
			for _, p := range pkts[:n] {
				f := p.Frame
				if len(f) < 42 {
					got = append(got, fmt.Sprintf("short frame %d", len(f)))
					continue
				}
				ihl := int(f[14]&0xf) * 4
				port := binary.BigEndian.Uint16(f[14+ihl+2:])
				payload := string(f[14+ihl+8:])
				if payload == marker {
					done <- result{got, nil}
					return
				}
				got = append(got, fmt.Sprintf("%d:%s", port, payload))
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read: %v (got %v)", r.err, r.got)
		}
		return r.got
	case <-time.After(15 * time.Second):
		tot, _ := s.Filter().Totals()
		s.Close()
		t.Fatalf("marker never arrived (filter totals %v)", tot)
	}
	return nil
}

// sendMix sends, from cli, UDP to served and unserved ports, a fragmented
// UDP datagram, a TCP SYN and an ICMP echo to srvIP, then the marker to
// port 4011. It returns the payloads that must pass, as "port:payload".
func sendMix(t *testing.T, cli *netlab.Host, srvIP netip.Addr, marker string) []string {
	t.Helper()
	var want []string
	udp := enginetest.ListenUDP(t, cli, 68)
	err := cli.Do(func() error {
		send := func(ip netip.Addr, port uint16, payload string, served bool) error {
			if _, err := udp.WriteToUDPAddrPort([]byte(payload), netip.AddrPortFrom(ip, port)); err != nil {
				return fmt.Errorf("send to %v:%d: %w", ip, port, err)
			}
			if served {
				want = append(want, fmt.Sprintf("%d:%s", port, payload))
			}
			return nil
		}
		bcast := netip.MustParseAddr("255.255.255.255")
		for i, c := range []struct {
			ip     netip.Addr
			port   uint16
			served bool
		}{
			{srvIP, 67, true}, {srvIP, 5000, false}, {srvIP, 4011, true}, {srvIP, 5000, false},
			{bcast, 67, true}, {bcast, 9999, false}, {srvIP, 2067, true}, {srvIP, 68, false},
			{srvIP, 5000, false}, {srvIP, 67, true}, {bcast, 9999, false}, {srvIP, 5000, false},
		} {
			if err := send(c.ip, c.port, fmt.Sprintf("p%d", i), c.served); err != nil {
				return err
			}
		}
		// 3000 bytes to a served port: IPv4 fragments, all dropped.
		if _, err := udp.WriteToUDPAddrPort(make([]byte, 3000), netip.AddrPortFrom(srvIP, 67)); err != nil {
			return err
		}
		// TCP SYN to a closed port (the server answers RST, outgoing).
		if c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(srvIP, 80).String(), 2*time.Second); err == nil {
			c.Close()
		}
		// ICMP echo request.
		ic, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer ic.Close()
		// Wait for an echo reply so the request has passed the filter
		// (asking again a few times: the lab's first packets may be lost
		// while the bridge ports settle).
		rb := make([]byte, 1500)
		gotReply := false
		for seq := 1; seq <= 10 && !gotReply; seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 7, Seq: seq, Data: []byte("ping")}}
			b, _ := msg.Marshal(nil)
			if _, err := ic.WriteTo(b, &net.IPAddr{IP: srvIP.AsSlice()}); err != nil {
				return err
			}
			ic.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
			for !gotReply {
				n, _, err := ic.ReadFrom(rb)
				if err != nil {
					break
				}
				if m, err := icmp.ParseMessage(1, rb[:n]); err == nil && m.Type == ipv4.ICMPTypeEchoReply {
					gotReply = true
				}
			}
		}
		if !gotReply {
			return errors.New("no echo reply to 10 echo requests")
		}
		return send(srvIP, 4011, marker, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestFilterPassesOnlyServedPorts(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.41.0/24")
	for _, classic := range []bool{false, true} {
		name := "ebpf"
		if classic {
			name = "classic-fallback"
		}
		t.Run(name, func(t *testing.T) {
			s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts, ForceClassicBPF: classic})
			wantMode := filter.ModeEBPF
			if classic {
				wantMode = filter.ModeClassic
			}
			if m := s.Filter().Mode(); m != wantMode {
				t.Fatalf("filter mode = %v, want %v (eBPF error: %v)", m, wantMode, s.Filter().EBPFError())
			}
			marker := "marker-" + name
			want := sendMix(t, cli, srv.Addr, marker)
			got := readUntil(t, s, marker)
			if !slices.Equal(got, want) {
				t.Errorf("socket read %q\nwant only the served %q", got, want)
			}
			if classic {
				if _, err := s.Filter().Totals(); err == nil {
					t.Error("classic filter claims to have counters")
				}
				return
			}
			for port, w := range map[uint16]filter.PortCounters{
				67:   {Served: true, Passed: 2 + 1}, // two unicast, one broadcast
				4011: {Served: true, Passed: 1 + 1}, // one + the marker
				2067: {Served: true, Passed: 1},
				5000: {Dropped: 4},
				9999: {Dropped: 2},
				68:   {Dropped: 1},
			} {
				c, err := s.Filter().Port(port)
				if err != nil {
					t.Fatal(err)
				}
				if c != w {
					t.Errorf("port %d counters = %+v, want %+v", port, c, w)
				}
			}
			tot, err := s.Filter().Totals()
			if err != nil {
				t.Fatal(err)
			}
			if tot[filter.Passed] != 6 || tot[filter.OtherPort] != 7 {
				t.Errorf("passed %d, other ports %d, want 6 and 7 (%v)", tot[filter.Passed], tot[filter.OtherPort], tot)
			}
			if tot[filter.Fragment] < 2 || tot[filter.NotUDP] < 2 {
				t.Errorf("fragments %d, not UDP %d: want at least 2 each (3 fragments; TCP SYN and ICMP echo)",
					tot[filter.Fragment], tot[filter.NotUDP])
			}
			if s.Filtered() != tot.Dropped() || tot.Dropped() < 7+2+2 {
				t.Errorf("Filtered() = %d, totals dropped %d", s.Filtered(), tot.Dropped())
			}
		})
	}
}

// TestRingsAreUsed: on this kernel the socket reads from the TPACKET_V3
// receive ring and sends through the transmit ring; a silent fallback to
// recvmmsg/sendmmsg would cost a system call per packet.
func TestRingsAreUsed(t *testing.T) {
	srv, _ := enginetest.Pair(t, "198.19.47.0/24")
	s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts})
	if err := s.RingError(); err != nil {
		t.Errorf("receive ring: %v", err)
	}
	if err := s.TxRingError(); err != nil {
		t.Errorf("transmit ring: %v", err)
	}
}

// TestCloseWakesBlockedReader: a reader waiting on an empty receive ring
// returns engine.ErrClosed when the socket is closed.
func TestCloseWakesBlockedReader(t *testing.T) {
	srv, _ := enginetest.Pair(t, "198.19.48.0/24")
	s := openIn(t, srv, rawsock.Config{Interface: "eth0", Ports: servedPorts})
	if s.RingError() != nil {
		t.Fatalf("receive ring not in use: %v", s.RingError())
	}
	done := make(chan error, 1)
	go func() {
		pkts := []*engine.Packet{new(engine.Packet)}
		_, err := s.ReadBatch(pkts)
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want engine.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch still blocked 10 s after Close")
	}
}
