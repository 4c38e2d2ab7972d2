package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/engine"
)

// Well-known and DHCP-snooping ports.
const (
	PortDHCPServer   = 67   // DISCOVERs are broadcast here
	PortDHCPClient   = 68   // clients listen here
	PortBootServer   = 4011 // PXE boot-server REQUESTs
	PortSnoopServer  = 2067 // DHCP-snooping mode: requests come here
	PortSnoopClient  = 2068 // DHCP-snooping mode: replies go here
	bootServerType   = 0x8000
	bootMenuLabel    = "peerboot"
	discoveryControl = 0x03 // no broadcast or multicast discovery: use the listed server
)

// Config configures a Server.
type Config struct {
	// ServerIP is this agent's IPv4 address on the served subnet: the
	// server identifier (54), the boot server of option 43 and the
	// default siaddr. Required.
	ServerIP netip.Addr
	// Decider chooses what each client boots. Required.
	Decider Decider
	// Snooping answers requests on SnoopServerPort (default 2067) with
	// replies to SnoopClientPort (default 2068) instead of 67 and 4011.
	Snooping        bool
	SnoopServerPort uint16
	SnoopClientPort uint16
	// PerMACRate and PerMACBurst limit the requests answered per client
	// (default 4/s, burst 8); GlobalRate and GlobalBurst limit all
	// requests together (default 20000/s, burst 2000). A negative rate
	// disables the limit.
	PerMACRate  float64
	PerMACBurst int
	GlobalRate  float64
	GlobalBurst int
	// Logger receives per-decision debug lines (off the zero-allocation
	// path unless debug logging is on).
	Logger *slog.Logger
}

// Stats counts what the server did with every packet it was handed.
type Stats struct {
	Handled       uint64 // packets handed to the server
	Malformed     uint64 // not a decodable BOOTP/DHCP request
	NotPXE        uint64 // DHCP from clients that are not PXE/HTTP-boot firmware
	WrongPort     uint64 // a message type this port does not answer (e.g. REQUEST on 67)
	RateLimited   uint64 // dropped by the per-MAC or global limit
	Ignored       uint64 // the Decider said ignore
	Aborted       uint64 // the Decider said abort
	DecideErrors  uint64 // the Decider failed (including no boot file for the architecture)
	BuildErrors   uint64 // the reply did not fit the client's maximum size
	Offers        uint64 // ProxyDHCP OFFERs written
	Acks          uint64 // boot-server ACKs written
	IPXEClients   uint64 // replies to iPXE
	RelayedOffers uint64 // OFFERs to relayed DISCOVERs (giaddr set)
}

type counters struct {
	handled, malformed, notPXE, wrongPort, rateLimited, ignored, aborted,
	decideErrors, buildErrors, offers, acks, ipxe, relayed atomic.Uint64
}

// Server answers PXE clients. It implements engine.Handler.
type Server struct {
	cfg     Config
	ctx     context.Context
	sip     [4]byte
	scratch scratchPool
	macLim  macLimiter
	global  globalLimiter
	c       counters
	now     func() int64
	debugOn bool
}

// New checks cfg and preallocates the server's working memory.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if !cfg.ServerIP.Is4() {
		return nil, fmt.Errorf("pxe: server address %v is not IPv4", cfg.ServerIP)
	}
	if cfg.Decider == nil {
		return nil, errors.New("pxe: a Decider is required")
	}
	if cfg.SnoopServerPort == 0 {
		cfg.SnoopServerPort = PortSnoopServer
	}
	if cfg.SnoopClientPort == 0 {
		cfg.SnoopClientPort = PortSnoopClient
	}
	if cfg.PerMACRate == 0 {
		cfg.PerMACRate, cfg.PerMACBurst = 4, 8
	}
	if cfg.GlobalRate == 0 {
		cfg.GlobalRate, cfg.GlobalBurst = 20000, 2000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg,
		ctx: ctx,
		sip: cfg.ServerIP.As4(),
		now: engine.Now,
	}
	s.scratch.init(max(16, 4*runtime.GOMAXPROCS(0)))
	s.macLim.g = newGCRA(cfg.PerMACRate, cfg.PerMACBurst)
	s.global.g = newGCRA(cfg.GlobalRate, cfg.GlobalBurst)
	s.debugOn = cfg.Logger.Enabled(ctx, slog.LevelDebug)
	return s, nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Handled: s.c.handled.Load(), Malformed: s.c.malformed.Load(), NotPXE: s.c.notPXE.Load(),
		WrongPort: s.c.wrongPort.Load(), RateLimited: s.c.rateLimited.Load(), Ignored: s.c.ignored.Load(),
		Aborted: s.c.aborted.Load(), DecideErrors: s.c.decideErrors.Load(), BuildErrors: s.c.buildErrors.Load(),
		Offers: s.c.offers.Load(), Acks: s.c.acks.Load(), IPXEClients: s.c.ipxe.Load(), RelayedOffers: s.c.relayed.Load(),
	}
}

// Handle implements engine.Handler: it answers a PXE DISCOVER with a
// ProxyDHCP OFFER and a boot-server REQUEST with an ACK, and drops (and
// counts) everything else. It does not allocate.
func (s *Server) Handle(req *engine.Packet, reply *engine.ReplyBuffer) bool {
	s.c.handled.Add(1)
	sc := s.scratch.get()
	ok := s.handle(sc, req, reply)
	s.scratch.put(sc)
	return ok
}

func (s *Server) handle(sc *scratch, req *engine.Packet, reply *engine.ReplyBuffer) bool {
	p := &sc.pkt
	if err := p.Decode(req.Payload); err != nil {
		s.c.malformed.Add(1)
		return false
	}
	if p.Op != dhcp.OpRequest || p.HType != 1 || p.HLen != 6 {
		s.c.malformed.Add(1)
		return false
	}
	mt, ok := p.MessageType()
	if !ok {
		s.c.notPXE.Add(1) // plain BOOTP
		return false
	}
	vc, ok := p.VendorClass()
	if !ok || (vc.Kind != dhcp.VendorPXE && vc.Kind != dhcp.VendorHTTP) {
		s.c.notPXE.Add(1)
		return false
	}
	var kind MsgKind
	var replyType dhcp.MessageType
	switch {
	case s.cfg.Snooping && req.DstPort == s.cfg.SnoopServerPort && mt == dhcp.Discover:
		kind, replyType = MsgDiscover, dhcp.Offer
	case s.cfg.Snooping && req.DstPort == s.cfg.SnoopServerPort && mt == dhcp.Request:
		kind, replyType = MsgRequest, dhcp.Ack
	case !s.cfg.Snooping && req.DstPort == PortDHCPServer && mt == dhcp.Discover:
		kind, replyType = MsgDiscover, dhcp.Offer
	case !s.cfg.Snooping && req.DstPort == PortBootServer && mt == dhcp.Request:
		kind, replyType = MsgRequest, dhcp.Ack
	default:
		s.c.wrongPort.Add(1)
		return false
	}
	c := &sc.client
	fillClient(c, p, vc, kind)
	// The engine stamps every packet with the time of its read, so the
	// clock is read once per batch rather than per request.
	if c.Received = req.Received; c.Received == 0 {
		c.Received = s.now()
	}
	if !s.macLim.allow(c.MAC, c.Received) || !s.global.allow(c.Received) {
		s.c.rateLimited.Add(1)
		return false
	}
	d, err := s.cfg.Decider.Decide(s.ctx, c)
	if err != nil {
		s.c.decideErrors.Add(1)
		if s.debugOn {
			s.cfg.Logger.Debug("pxe: no decision", "mac", macString(c.MAC), "class", c.Class.String(), "err", err)
		}
		return false
	}
	switch d.Action {
	case Boot:
	case Abort:
		s.c.aborted.Add(1)
		if d.BootFile == "" {
			return false
		}
	default:
		s.c.ignored.Add(1)
		return false
	}
	msg, err := s.build(sc, c, d, replyType, reply.Payload[:cap(reply.Payload)])
	if err != nil {
		s.c.buildErrors.Add(1)
		return false
	}
	reply.Payload = msg
	if s.cfg.Snooping {
		reply.DstPort = s.cfg.SnoopClientPort
	}
	if c.IPXE {
		s.c.ipxe.Add(1)
	}
	if kind == MsgDiscover {
		s.c.offers.Add(1)
		if c.Relayed() {
			s.c.relayed.Add(1)
		}
	} else {
		s.c.acks.Add(1)
	}
	if s.debugOn {
		s.cfg.Logger.Debug("pxe: reply", "type", replyType.String(), "mac", macString(c.MAC),
			"class", c.Class.String(), "ipxe", c.IPXE, "file", d.BootFile)
	}
	return true
}

// fillClient describes the client for the Decider.
func fillClient(c *Client, p *dhcp.Packet, vc *dhcp.VendorClass, kind MsgKind) {
	*c = Client{Kind: kind, Vendor: vc.Raw, HTTPBoot: vc.Kind == dhcp.VendorHTTP, IPXE: p.IsIPXE()}
	copy(c.MAC[:], p.CHAddr[:6])
	if a, ok := p.ClientArch(); ok {
		c.Arch, c.HasArch = Arch(a), true
	} else if vc.HasArch {
		c.Arch, c.HasArch = Arch(vc.Arch), true
	}
	if c.HasArch {
		c.Class = ClassOf(c.Arch)
	}
	if id, ok := p.ClientMachineID(); ok && id.Usable() {
		c.GUID, c.HasGUID = id.UUID, true
	}
	c.UserClass, _ = p.UserClass()
	if p.GIAddr != [4]byte{} {
		c.GIAddr = netip.AddrFrom4(p.GIAddr)
	}
	if ri, ok := p.RelayAgentInfo(); ok {
		c.CircuitID, _ = ri.CircuitID()
		c.RemoteID, _ = ri.RemoteID()
	}
}

// build writes the reply:
//
//   - OFFER to a BIOS PXE ROM: option 43 with discovery control, this
//     server as boot server and a one-item menu, no file: the ROM then
//     asks this server on 4011 (PXE 2.1 boot server discovery).
//   - OFFER to UEFI PXE: PXEClient, siaddr and no option 43: the firmware
//     treats it as a boot-server offer and asks on 4011.
//   - OFFER to iPXE on UEFI and to UEFI HTTP boot: the file (a URL for
//     HTTP boot, with HTTPClient in option 60) right in the offer.
//   - ACK to a 4011 REQUEST: siaddr, sname and file, with the client's
//     boot item (43.71) echoed when it sent one.
//
// Every reply carries option 54 and echoes option 97.
func (s *Server) build(sc *scratch, c *Client, d Decision, t dhcp.MessageType, dst []byte) ([]byte, error) {
	p, b := &sc.pkt, &sc.b
	server := s.sip
	if d.Server.Is4() {
		server = d.Server.As4()
	}
	b.StartReply(dst, p, t)
	if p.GIAddr != [4]byte{} && p.CIAddr == [4]byte{} {
		// A ProxyDHCP reply has no yiaddr, so the relay can reach the
		// client only by broadcast; relays (dnsmasq's among them) drop
		// replies that do not ask for it (RFC 2131 section 4.1).
		b.SetFlags(p.Flags | dhcp.FlagBroadcast)
	}
	b.SetSecs(p.Secs)
	b.SetSIAddr(server)
	b.AddServerID(s.sip)
	if c.HTTPBoot || c.Class.HTTP() {
		b.AddString(dhcp.OptVendorClass, "HTTPClient")
	} else {
		b.AddString(dhcp.OptVendorClass, "PXEClient")
	}
	b.EchoOption(p, dhcp.OptClientMachineID)
	fileInReply := t == dhcp.Ack || c.HTTPBoot || c.Class.HTTP() || (c.IPXE && c.Class != ClassBIOS)
	if fileInReply {
		b.SetBootFile(d.BootFile)
	}
	switch {
	case t == dhcp.Offer && c.Class == ClassBIOS && !c.HTTPBoot:
		b.BeginPXE()
		b.PXEDiscoveryControl(discoveryControl)
		b.PXEBootServer(bootServerType, s.sip)
		b.PXEBootMenu(dhcp.MenuItem{Type: bootServerType, Description: bootMenuLabel})
		b.PXEMenuPrompt(0, bootMenuLabel)
		b.EndPXE()
	case t == dhcp.Ack:
		if v, ok := p.PXEOptions(); ok {
			if typ, layer, ok := v.BootItem(); ok {
				b.BeginPXE()
				b.PXEBootItem(typ, layer)
				b.EndPXE()
			}
		}
	}
	return b.Finish()
}

func macString(m [6]byte) string {
	const hx = "0123456789abcdef"
	var out [17]byte
	for i, v := range m {
		if i > 0 {
			out[i*3-1] = ':'
		}
		out[i*3] = hx[v>>4]
		out[i*3+1] = hx[v&15]
	}
	return string(out[:])
}
