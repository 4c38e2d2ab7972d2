package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Forwarder is forward mode: relayed PXE requests go to the agents of the
// relay's subnet on their snooping port, with the responder as giaddr, and
// their answers go back out through the original relay.
type Forwarder struct {
	Agents     *Referrer // for the agent list only
	Self       netip.Addr
	ServerPort int // where agents listen (2067)
	ClientPort int // where agents answer (2068)
	Log        *slog.Logger

	mu      sync.Mutex
	pending map[uint32]pendingReq

	Forwarded, Answered, NotPXE, NotRelayed, NoAgent, Unmatched atomic.Uint64
}

type pendingReq struct {
	giaddr net.IP
	exp    time.Time
}

// Serve reads relayed requests on in (port 67) and agent answers on back
// (ClientPort) until ctx ends.
func (f *Forwarder) Serve(ctx context.Context, in, back *net.UDPConn) error {
	f.pending = map[uint32]pendingReq{}
	go func() { <-ctx.Done(); in.Close(); back.Close() }()
	errc := make(chan error, 2)
	go func() { errc <- f.readRequests(ctx, in, back) }()
	go func() { errc <- f.readAnswers(in, back) }()
	err := <-errc
	<-errc
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func isPXE(m *dhcpv4.DHCPv4) bool {
	vc := m.ClassIdentifier()
	return strings.HasPrefix(vc, "PXEClient") || strings.HasPrefix(vc, "HTTPClient")
}

func (f *Forwarder) readRequests(ctx context.Context, in, back *net.UDPConn) error {
	buf := make([]byte, 4096)
	for {
		n, _, err := in.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootRequest || !isPXE(m) {
			f.NotPXE.Add(1)
			continue
		}
		gi, ok := netip.AddrFromSlice(m.GatewayIPAddr.To4())
		if !ok || gi.IsUnspecified() {
			f.NotRelayed.Add(1)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		agents, err := f.Agents.agentsFor(cctx, gi)
		cancel()
		if err != nil || len(agents) == 0 {
			f.NoAgent.Add(1)
			continue
		}
		f.mu.Lock()
		now := time.Now()
		for k, p := range f.pending {
			if now.After(p.exp) {
				delete(f.pending, k)
			}
		}
		f.pending[uint32(m.TransactionID[0])<<24|uint32(m.TransactionID[1])<<16|uint32(m.TransactionID[2])<<8|uint32(m.TransactionID[3])] = pendingReq{giaddr: m.GatewayIPAddr, exp: now.Add(30 * time.Second)}
		f.mu.Unlock()
		m.GatewayIPAddr = f.Self.AsSlice()
		out := m.ToBytes()
		for _, a := range agents {
			if addr := addressIn(a, gi); addr.IsValid() {
				if _, err := back.WriteToUDP(out, &net.UDPAddr{IP: addr.AsSlice(), Port: f.ServerPort}); err == nil {
					f.Forwarded.Add(1)
				}
			}
		}
	}
}

func (f *Forwarder) readAnswers(in, back *net.UDPConn) error {
	buf := make([]byte, 4096)
	for {
		n, _, err := back.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			f.Unmatched.Add(1)
			continue
		}
		key := uint32(m.TransactionID[0])<<24 | uint32(m.TransactionID[1])<<16 | uint32(m.TransactionID[2])<<8 | uint32(m.TransactionID[3])
		f.mu.Lock()
		p, ok := f.pending[key]
		f.mu.Unlock()
		if !ok {
			f.Unmatched.Add(1)
			continue
		}
		m.GatewayIPAddr = p.giaddr
		if _, err := in.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: p.giaddr, Port: 67}); err != nil {
			if f.Log != nil {
				f.Log.Warn("relaying an agent's answer", "relay", p.giaddr, "err", err)
			}
			continue
		}
		f.Answered.Add(1)
	}
}

// String summarises the counters.
func (f *Forwarder) String() string {
	return fmt.Sprintf("forwarded=%d answered=%d not_pxe=%d not_relayed=%d no_agent=%d unmatched=%d",
		f.Forwarded.Load(), f.Answered.Load(), f.NotPXE.Load(), f.NotRelayed.Load(), f.NoAgent.Load(), f.Unmatched.Load())
}
