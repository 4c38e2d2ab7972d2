package pxebench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/codec/frame"
)

// Config configures a load run.
type Config struct {
	Interface string        // interface to send and receive raw frames on (required)
	Clients   int           // simulated PXE clients (default 16)
	Duration  time.Duration // how long to run (default 5s)
	Timeout   time.Duration // how long a client waits for each reply (default 1s)
	// ClientNet gives each client an address (ciaddr of its 4011 REQUEST):
	// client i gets host number 10+i. Default 198.18.0.0/16... must lie in
	// 198.18.0.0/15.
	ClientNet netip.Prefix
}

// Result is what a run measured.
type Result struct {
	Clients   int    `json:"clients"`
	Exchanges uint64 `json:"exchanges"` // full DISCOVER..ACK exchanges completed
	// ClientsServed is how many clients completed at least one exchange.
	ClientsServed int           `json:"clients_served"`
	Timeouts      uint64        `json:"timeouts"` // steps that got no reply in time
	Elapsed       time.Duration `json:"elapsed_ns"`
	PerSecond     float64       `json:"exchanges_per_second"`
	P50           time.Duration `json:"p50_ns"`
	P90           time.Duration `json:"p90_ns"`
	P99           time.Duration `json:"p99_ns"`
	Max           time.Duration `json:"max_ns"`
	FramesSent    uint64        `json:"frames_sent"`
}

func (r Result) String() string {
	return fmt.Sprintf("%d clients: %d exchanges in %.2fs = %.0f/s; latency p50 %v p90 %v p99 %v max %v; %d timeouts",
		r.Clients, r.Exchanges, r.Elapsed.Seconds(), r.PerSecond, r.P50, r.P90, r.P99, r.Max, r.Timeouts)
}

var labRange = netip.MustParsePrefix("198.18.0.0/15")

// archs the simulated clients cycle through, with their option 60.
var archs = []struct {
	arch   uint16
	vendor string
}{
	{7, "PXEClient:Arch:00007:UNDI:003000"},
	{0, "PXEClient:Arch:00000:UNDI:002001"},
	{9, "PXEClient:Arch:00009:UNDI:003016"},
	{11, "PXEClient:Arch:00011:UNDI:003000"},
}

type reply struct {
	typ    dhcp.MessageType
	srcMAC frame.MAC
	src    netip.Addr
	at     time.Time
	// bootItem is the first item of the OFFER's PXE boot menu (option 43
	// sub-option 9), which the client asks the boot server for in its
	// REQUEST (sub-option 71), as a PXE ROM does; hasItem is false when the
	// OFFER has no menu (UEFI clients of peerboot).
	bootItem uint16
	hasItem  bool
	// pxe is true when the reply is a PXE answer (option 60 PXEClient)
	// and, for an ACK, names a boot file.
	pxe bool
}

type client struct {
	id      int
	mac     frame.MAC
	ip      [4]byte
	replies chan reply
}

// Run plays the clients until ctx ends or cfg.Duration passes.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 16
	}
	if cfg.Clients > 60000 {
		return Result{}, errors.New("loadgen: at most 60000 clients")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if !cfg.ClientNet.IsValid() {
		cfg.ClientNet = netip.MustParsePrefix("198.18.0.0/16")
	}
	if !labRange.Contains(cfg.ClientNet.Addr()) || cfg.ClientNet.Bits() < labRange.Bits() {
		return Result{}, fmt.Errorf("loadgen: client network %v outside %v", cfg.ClientNet, labRange)
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	fd, err := openPacketSocket(ifi.Index, unix.ETH_P_IP, true)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(fd)
	arpFD, err := openPacketSocket(ifi.Index, unix.ETH_P_ARP, false)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(arpFD)

	base := cfg.ClientNet.Masked().Addr().As4()
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		c := &client{id: i, replies: make(chan reply, 8)}
		c.mac = frame.MAC{0x02, 0x50, 0x42, byte(i >> 16), byte(i >> 8), byte(i)}
		h := binary.BigEndian.Uint32(base[:]) + uint32(10+i)
		binary.BigEndian.PutUint32(c.ip[:], h)
		clients[i] = c
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var sent, done, timeouts atomic.Uint64
	var recvWG sync.WaitGroup
	recvWG.Add(2)
	stopRecv := make(chan struct{})
	go func() {
		defer recvWG.Done()
		receive(fd, clients, stopRecv)
	}()
	go func() {
		defer recvWG.Done()
		answerARP(arpFD, ifi.Index, clients, stopRecv)
	}()
	lat := make([][]time.Duration, len(clients))
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[c.id] = c.loop(ctx, fd, ifi.Index, cfg.Timeout, &sent, &done, &timeouts)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopRecv)
	recvWG.Wait()
	var all []time.Duration
	served := 0
	for _, l := range lat {
		all = append(all, l...)
		if len(l) > 0 {
			served++
		}
	}
	slices.Sort(all)
	r := Result{Clients: len(clients), ClientsServed: served, Exchanges: done.Load(), Timeouts: timeouts.Load(),
		Elapsed: elapsed, FramesSent: sent.Load()}
	r.PerSecond = float64(r.Exchanges) / elapsed.Seconds()
	if n := len(all); n > 0 {
		r.P50, r.P90, r.P99, r.Max = all[n*50/100], all[n*90/100], all[n*99/100], all[n-1]
	}
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacketSocket opens an AF_PACKET socket for one EtherType on one
// interface, with a 100 ms receive timeout so readers can notice a stop.
// promisc also receives frames unicast to other MACs (the simulated
// clients').
func openPacketSocket(ifIndex int, proto uint16, promisc bool) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
	if err != nil {
		return -1, fmt.Errorf("loadgen: packet socket for EtherType %#04x: %w", proto, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifIndex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("loadgen: bind packet socket: %w", err)
	}
	if promisc {
		mreq := unix.PacketMreq{Ifindex: int32(ifIndex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("loadgen: promiscuous mode: %w", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	return fd, nil
}

// receive reads replies and hands each to its client by xid.
func receive(fd int, clients []*client, stop <-chan struct{}) {
	buf := make([]byte, 4096)
	var f frame.Frame
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // timeout: look at stop again
		}
		if frame.DecodeUDP4(buf[:n], &f) != nil || f.UDP.SrcPort == 68 {
			continue
		}
		p := f.Payload
		if len(p) < 244 || p[0] != dhcp.OpReply {
			continue
		}
		xid := binary.BigEndian.Uint32(p[4:8])
		id := int(xid >> 12)
		if xid>>31 == 0 || id&0x7ffff >= len(clients) {
			continue
		}
		c := clients[id&0x7ffff]
		var pkt dhcp.Packet
		if pkt.Decode(p) != nil {
			continue
		}
		mt, _ := pkt.MessageType()
		r := reply{typ: mt, srcMAC: f.Eth.Src, src: netip.AddrFrom4(f.IP.Src), at: time.Now()}
		vc, ok := pkt.VendorClassRaw()
		r.pxe = ok && string(vc) == "PXEClient" && (mt != dhcp.Ack || len(pkt.BootFile()) > 0)
		if v, ok := pkt.PXEOptions(); ok {
			if m := v.BootMenu(); m.Next() {
				r.bootItem, r.hasItem = m.Type(), true
			}
		}
		select {
		case c.replies <- r:
		default:
		}
	}
}

// answerARP answers the server's ARP requests for the clients' addresses,
// as the clients' own IP stacks would: a server answering the boot-server
// REQUEST through an ordinary UDP socket (dnsmasq, peerboot's 4011 socket)
// resolves the client's address first.
func answerARP(fd, ifIndex int, clients []*client, stop <-chan struct{}) {
	const arpLen = 28
	buf := make([]byte, 1500)
	out := make([]byte, 14+arpLen)
	sa := &unix.SockaddrLinklayer{Ifindex: ifIndex, Halen: 6, Protocol: htons(unix.ETH_P_ARP)}
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 14+arpLen {
			continue
		}
		a := buf[14 : 14+arpLen]
		// Ethernet/IPv4 ARP request (htype 1, ptype 0x0800, hlen 6, plen 4, op 1).
		if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 ||
			binary.BigEndian.Uint16(a[6:]) != 1 {
			continue
		}
		var target [4]byte
		copy(target[:], a[24:28])
		c := clientByIP(clients, target)
		if c == nil {
			continue
		}
		copy(out[0:6], a[8:14]) // to the sender's MAC
		copy(out[6:12], c.mac[:])
		binary.BigEndian.PutUint16(out[12:], 0x0806)
		r := out[14:]
		copy(r[0:6], a[0:6])
		binary.BigEndian.PutUint16(r[6:], 2) // reply
		copy(r[8:14], c.mac[:])
		copy(r[14:18], target[:])
		copy(r[18:28], a[8:18]) // sender MAC and IP become the target
		copy(sa.Addr[:], a[8:14])
		_ = unix.Sendto(fd, out, 0, sa)
	}
}

// clientByIP finds the simulated client that owns ip.
func clientByIP(clients []*client, ip [4]byte) *client {
	if len(clients) == 0 {
		return nil
	}
	first := binary.BigEndian.Uint32(clients[0].ip[:])
	i := int64(binary.BigEndian.Uint32(ip[:])) - int64(first)
	if i < 0 || i >= int64(len(clients)) {
		return nil
	}
	return clients[i]
}

var bcastMAC = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (c *client) loop(ctx context.Context, fd, ifIndex int, timeout time.Duration, sent, done, timeouts *atomic.Uint64) []time.Duration {
	var lat []time.Duration
	arch := archs[c.id%len(archs)]
	buf := make([]byte, 1500)
	out := make([]byte, 0, 1600)
	sa := &unix.SockaddrLinklayer{Ifindex: ifIndex, Halen: 6}
	send := func(dst frame.MAC, src, dstIP [4]byte, sport, dport uint16, msg []byte) {
		h := frame.Header{
			Eth: frame.Ethernet{Dst: dst, Src: c.mac},
			IP:  frame.IPv4{TTL: 64, Src: src, Dst: dstIP},
			UDP: frame.UDP{SrcPort: sport, DstPort: dport},
		}
		b, err := frame.Append(out[:0], &h, msg)
		if err != nil {
			return
		}
		copy(sa.Addr[:], dst[:])
		if unix.Sendto(fd, b, 0, sa) == nil {
			sent.Add(1)
		}
	}
	wait := func(xid uint32, want dhcp.MessageType) (reply, bool) {
		t := time.NewTimer(timeout)
		defer t.Stop()
		for {
			select {
			case r := <-c.replies:
				if r.typ == want && r.pxe {
					return r, true
				}
			case <-t.C:
				return reply{}, false
			case <-ctx.Done():
				return reply{}, false
			}
		}
	}
	for seq := uint32(0); ctx.Err() == nil; seq++ {
		xid := 1<<31 | uint32(c.id)<<12 | seq&0xfff
		t0 := time.Now()
		msg := c.message(buf, dhcp.Discover, xid, arch.arch, arch.vendor, [4]byte{}, reply{})
		send(bcastMAC, [4]byte{}, [4]byte{255, 255, 255, 255}, 68, 67, msg)
		offer, ok := wait(xid, dhcp.Offer)
		if !ok {
			if ctx.Err() == nil {
				timeouts.Add(1)
			}
			continue
		}
		msg = c.message(buf, dhcp.Request, xid, arch.arch, arch.vendor, c.ip, offer)
		send(offer.srcMAC, c.ip, offer.src.As4(), 68, 4011, msg)
		if _, ok := wait(xid, dhcp.Ack); !ok {
			if ctx.Err() == nil {
				timeouts.Add(1)
			}
			continue
		}
		done.Add(1)
		lat = append(lat, time.Since(t0))
	}
	return lat
}

// message writes a PXE client request (the codec's builder writes
// replies; the op is turned into a request afterwards). A REQUEST asks for
// the first item of the offer's boot menu when it had one.
func (c *client) message(buf []byte, t dhcp.MessageType, xid uint32, arch uint16, vendor string, ciaddr [4]byte, offer reply) []byte {
	var b dhcp.Builder
	b.Start(buf, t, 1500)
	b.SetXID(xid)
	b.SetCHAddr(1, c.mac[:])
	b.SetCIAddr(ciaddr)
	if ciaddr == [4]byte{} {
		b.SetFlags(dhcp.FlagBroadcast)
	}
	b.AddUint16(dhcp.OptMaxMessageSize, 1472)
	b.AddUint16(dhcp.OptClientArch, arch)
	b.AddOption(dhcp.OptClientNII, []byte{1, 3, 0})
	b.AddString(dhcp.OptVendorClass, vendor)
	var guid [17]byte
	guid[1], guid[2], guid[3], guid[15], guid[16] = 0x50, 0x42, 0x01, byte(c.id>>8), byte(c.id)
	b.AddOption(dhcp.OptClientMachineID, guid[:])
	if t == dhcp.Request && offer.hasItem {
		b.BeginPXE()
		b.PXEBootItem(offer.bootItem, 0)
		b.EndPXE()
	}
	m, err := b.Finish()
	if err != nil {
		return nil
	}
	m[0] = dhcp.OpRequest
	return m
}
