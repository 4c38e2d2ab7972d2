package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/agent/cache"
	"github.com/peerboot/peerboot/agent/config"
	"github.com/peerboot/peerboot/agent/decide"
	"github.com/peerboot/peerboot/agent/spool"
	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/client"
	cdecide "github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/election"
	electudp "github.com/peerboot/peerboot/election/udp"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/pxe"
	"github.com/peerboot/peerboot/tftp"
)

// Version is reported to Central and in heartbeats.
var Version = "dev"

// Agent is one running agent.
type Agent struct {
	cfg    config.Config
	log    *slog.Logger
	stderr io.Writer

	ip     netip.Addr
	prefix netip.Prefix
	st     state

	central *client.Client
	cache   *cache.Cache
	spool   *spool.Spool
	decider *decide.Decider
	elector *election.Elector
	pxes    []*pxe.Server
	engines []*engine.Engine
	tftp    *tftp.Server

	ready     atomic.Bool
	centralUp atomic.Bool
	transfers sync.Map // outcome -> *atomic.Uint64
	tftpDone  chan struct{}
}

// NewLogger builds the slog logger the settings ask for.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// interfaceAddress returns the served address and its prefix.
func interfaceAddress(cfg config.Config) (netip.Addr, netip.Prefix, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("setting interface %q: %w", cfg.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("setting interface %q: %w", cfg.Interface, err)
	}
	var want netip.Addr
	if cfg.ServerIP != "" {
		want = netip.MustParseAddr(cfg.ServerIP)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if !want.IsValid() || p.Addr() == want {
			return p.Addr(), p.Masked(), nil
		}
	}
	if want.IsValid() {
		return want, netip.PrefixFrom(want, 24).Masked(), nil
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("setting interface %q has no IPv4 address (set server-ip)", cfg.Interface)
}

// New prepares an agent: it resolves the interface, enrolls with Central
// (or reuses the enrollment saved in the cache directory) and opens the
// cache and the spool. It fails with one clear line when it cannot start.
func New(ctx context.Context, cfg config.Config, stderr io.Writer) (*Agent, error) {
	a := &Agent{cfg: cfg, log: NewLogger(cfg, stderr), stderr: stderr}
	var err error
	if a.ip, a.prefix, err = interfaceAddress(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("setting cache-dir %q: %w", cfg.CacheDir, err)
	}
	if _, err := readJSON(statePath(cfg.CacheDir), &a.st); err != nil {
		return nil, fmt.Errorf("agent state: %w", err)
	}
	if a.st.CentralURL != "" && a.st.CentralURL != cfg.CentralURL {
		a.st = state{} // another Central: enroll again
	}
	hc, err := CentralHTTPClient(cfg.CentralCA)
	if err != nil {
		return nil, err
	}
	a.central = client.New(cfg.CentralURL, a.st.Token, hc)
	a.central.Retries = 0
	if a.st.Token == "" {
		if err := a.enroll(ctx); err != nil {
			return nil, err
		}
	}
	if a.cache, err = cache.Open(cfg.CacheDir, cfg.CacheSize, a.log); err != nil {
		return nil, err
	}
	if a.spool, err = spool.Open(cfg.SpoolDir, a.log); err != nil {
		return nil, fmt.Errorf("setting spool-dir %q: %w", cfg.SpoolDir, err)
	}
	return a, nil
}

func (a *Agent) enroll(ctx context.Context) error {
	if a.cfg.EnrollmentKey == "" {
		return errors.New("setting enrollment-key is required on first start (Central printed it on its first start)")
	}
	host, _ := os.Hostname()
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := a.central.Enroll(ectx, api.EnrollRequest{
		EnrollmentKey: a.cfg.EnrollmentKey, Host: host, Subnets: []string{a.prefix.String()},
		Addresses: []string{a.ip.String()}, Version: Version, Weight: a.cfg.Weight,
	})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return fmt.Errorf("enrolling with Central %s: %s", a.cfg.CentralURL, ce.Message)
		}
		return fmt.Errorf("cannot reach Central at %s to enroll: %s", a.cfg.CentralURL, RootCause(err))
	}
	a.st = state{AgentID: resp.AgentID, Token: resp.Token, CentralURL: a.cfg.CentralURL, ElectionKey: deriveElectionKey(a.cfg.EnrollmentKey)}
	if err := writeJSONAtomic(statePath(a.cfg.CacheDir), a.st); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	a.log.Info("enrolled with Central", "agent", resp.AgentID, "central", a.cfg.CentralURL)
	return nil
}

// deriveElectionKey turns the site enrollment key into the election's site
// key, so agents of one site agree without another secret to distribute.
func deriveElectionKey(enrollmentKey string) string {
	if enrollmentKey == "" {
		return ""
	}
	s := sha256.Sum256([]byte("peerboot election key\x00" + enrollmentKey))
	return hex.EncodeToString(s[:])
}

// electionKey is the configured key, else the one derived at enrollment
// (kept in the state file), else one derived from the enrollment key.
func (a *Agent) electionKey() (string, error) {
	for _, k := range []string{a.cfg.ElectionKey, a.st.ElectionKey, deriveElectionKey(a.cfg.EnrollmentKey)} {
		if k != "" {
			return k, nil
		}
	}
	return "", errors.New("setting election-key (or enrollment-key, to derive it) is required")
}

// RootCause shortens a network error to its last, most telling part
// ("connection refused"), for one-line messages.
func RootCause(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}

// electionID derives the stable election id from the Central agent id.
func electionID(agentID string) election.AgentID {
	h := fnv.New64a()
	h.Write([]byte(agentID))
	id := election.AgentID(h.Sum64())
	if id == 0 {
		id = 1
	}
	return id
}

// ElectionID returns this agent's id in the subnet election.
func (a *Agent) ElectionID() uint64 { return uint64(electionID(a.st.AgentID)) }

// neededImages returns the images the deployments applying to this subnet
// use.
func (a *Agent) neededImages(set *api.DecisionSet) []model.Image {
	want := map[string]bool{}
	for _, d := range set.Config.Deployments {
		if len(d.Subnets) == 0 {
			want[d.ImageID] = true
			continue
		}
		for _, s := range d.Subnets {
			if p, err := cdecide.ParseSubnet(s); err == nil && (p.Contains(a.ip) || p.Overlaps(a.prefix)) {
				want[d.ImageID] = true
			}
		}
	}
	var out []model.Image
	for _, img := range set.Config.Images {
		if want[img.ID] {
			out = append(out, img)
		}
	}
	return out
}

// installSet makes a decision set current: the decider uses it and the
// cache learns which images to hold.
func (a *Agent) installSet(s savedSet) {
	a.decider.SetDecisionSet(s.Set, s.FetchedAt)
	a.cache.SetImages(a.neededImages(s.Set))
}

// fetchSet asks Central for the decision set (long-polling when etag is
// set), saves and installs a new one. It reports whether the set changed.
func (a *Agent) fetchSet(ctx context.Context, etag string, wait time.Duration) (string, bool, error) {
	set, tag, err := a.central.DecisionSet(ctx, []string{a.prefix.String()}, etag, wait)
	if err != nil {
		a.centralUp.Store(false)
		return etag, false, err
	}
	if !a.centralUp.Swap(true) && a.spool != nil {
		a.spool.Kick() // Central is back: send what queued up
	}
	now := time.Now()
	if set == nil {
		a.decider.Confirm(now)
		return tag, false, nil
	}
	s := savedSet{Set: set, ETag: tag, FetchedAt: now}
	if err := writeJSONAtomic(setPath(a.cfg.CacheDir), s); err != nil {
		a.log.Warn("saving the decision set", "err", err)
	}
	a.installSet(s)
	return tag, true, nil
}

func (a *Agent) syncImages(ctx context.Context, bar *progressBar) {
	var progress cache.Progress
	if bar != nil {
		progress = bar.update
	}
	if err := a.cache.Sync(ctx, a.central, progress); err != nil && ctx.Err() == nil {
		a.log.Warn("image sync incomplete", "err", err)
	}
	if a.tftp != nil {
		// Images pruned by the sync may still be open for a lingering
		// TFTP transfer; free their disk space now.
		if n := a.tftp.CloseRemovedFiles(); n > 0 {
			a.log.Info("closed pruned image files kept open by the TFTP server", "files", n)
		}
	}
	if bar != nil {
		bar.finish()
	}
	if a.elector != nil {
		a.elector.SetImages(a.cache.Held())
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Run serves until ctx is cancelled, then shuts down gracefully: no new
// clients are answered, running transfers get the drain timeout to finish,
// and pending events are flushed once more.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.cfg
	var ignore [][6]byte
	for _, m := range cfg.IgnoreMACs {
		mac, err := pxe.ParseMAC(m)
		if err != nil {
			return fmt.Errorf("setting ignore-mac %q: %w", m, err)
		}
		ignore = append(ignore, mac)
	}
	record := func(ev model.Event) {
		if ev.AgentID == "" {
			ev.AgentID = a.st.AgentID
		}
		if err := a.spool.Append(ev); err != nil {
			a.log.Error("event lost: spool append failed", "err", err)
		}
	}

	// Election.
	key, err := a.electionKey()
	if err != nil {
		return err
	}
	tr, err := electudp.Listen(electudp.Options{Interface: cfg.Interface, Port: cfg.ElectionPort, Broadcast: broadcastAddr(a.prefix)})
	if err != nil {
		return err
	}
	w := uint8(cfg.Weight)
	a.elector, err = election.New(election.Config{
		Agent: electionID(a.st.AgentID), Subnet: election.SubnetID(a.prefix), Key: []byte(key),
		Weight: &w, ElectionWait: cfg.ElectionWait, Reserve: cfg.Reserve, HeartbeatInterval: cfg.Heartbeat, LoadEpoch: cfg.LoadEpoch,
		Addr: a.ip, Logger: a.log,
	}, nil, tr)
	if err != nil {
		tr.Close()
		return err
	}
	a.decider = decide.New(decide.Config{
		Central: a.central, Election: a.elector, Images: a.cache, AgentID: a.st.AgentID, Subnet: a.ip,
		Timeout: cfg.CentralTimeout, MaxStale: cfg.MaxStale, IgnoreMACs: ignore, Record: record, Log: a.log,
	})

	// Decision set: what Central said last (from disk), then fresh.
	var saved savedSet
	if ok, err := readJSON(setPath(cfg.CacheDir), &saved); err != nil {
		a.log.Warn("ignoring the saved decision set", "err", err)
	} else if ok && saved.Set != nil {
		a.installSet(saved)
	}
	etag := saved.ETag
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	if tag, _, err := a.fetchSet(fctx, "", 0); err != nil {
		if saved.Set == nil {
			fcancel()
			a.elector.Close()
			return fmt.Errorf("cannot reach Central at %s and no decision set is cached: %s", cfg.CentralURL, RootCause(err))
		}
		a.log.Warn("Central unreachable: serving from the cached decision set", "age", time.Since(saved.FetchedAt).Round(time.Second), "err", err)
	} else {
		etag = tag
	}
	fcancel()
	var bar *progressBar
	if cfg.Progress {
		bar = &progressBar{w: a.stderr, tty: isTerminal(a.stderr), log: a.log}
	}
	a.syncImages(ctx, bar)
	if ctx.Err() != nil {
		a.elector.Close()
		return nil
	}

	// Serving pieces.
	ectx, ecancel := context.WithCancel(context.Background()) // engine, election
	defer ecancel()
	tctx, tcancel := context.WithCancel(context.Background()) // TFTP: outlives ctx by the drain
	defer tcancel()
	bctx, bcancel := context.WithCancel(ctx) // background loops
	defer bcancel()

	if err := a.elector.Start(ectx); err != nil {
		return fmt.Errorf("election: %w", err)
	}
	a.elector.SetImages(a.cache.Held())

	if err := a.startTFTP(tctx, record); err != nil {
		a.elector.Close()
		return err
	}
	engDone, err := a.startEngine(ectx)
	if err != nil {
		a.elector.Close()
		tcancel()
		return err
	}
	httpSrv, err := a.startHTTP()
	if err != nil {
		a.elector.Close()
		ecancel()
		tcancel()
		return err
	}

	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); a.spool.Run(bctx, a.postEvents, time.Second) }()
	go func() { defer bg.Done(); a.watchSet(bctx, etag) }()
	go func() { defer bg.Done(); a.heartbeats(bctx) }()

	a.ready.Store(true)
	a.log.Info("agent ready", "agent", a.st.AgentID, "election_id", fmt.Sprintf("%016x", uint64(electionID(a.st.AgentID))),
		"interface", cfg.Interface, "address", a.ip, "subnet", a.prefix, "images", a.cache.Held(), "metrics", cfg.MetricsListen)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-engDone:
		runErr = err
	}
	// Graceful shutdown.
	a.ready.Store(false)
	a.log.Info("shutting down: no new clients; waiting for transfers", "active", a.tftp.Counters().Active, "drain", cfg.DrainTimeout)
	a.elector.Close()
	ecancel()
	if runErr == nil {
		<-engDone
	}
	deadline := time.NewTimer(cfg.DrainTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	for a.tftp.Counters().Active > 0 {
		select {
		case <-deadline.C:
			a.log.Warn("drain timeout: stopping running transfers", "active", a.tftp.Counters().Active)
			goto drained
		case <-tick.C:
		}
	}
drained:
	tick.Stop()
	deadline.Stop()
	tcancel()
	<-a.tftpDone
	bcancel()
	bg.Wait()
	fl, fcancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	if err := a.spool.Flush(fl, a.postEvents); err != nil {
		a.log.Info("events kept on disk for the next start", "pending", a.spool.Pending())
	}
	fcancel2()
	a.spool.Close()
	if httpSrv != nil {
		sctx, c := context.WithTimeout(context.Background(), time.Second)
		httpSrv.Shutdown(sctx)
		c()
	}
	a.log.Info("agent stopped", "pxe", a.pxeStats(), "tftp", a.tftp.Counters())
	return runErr
}

func (a *Agent) postEvents(ctx context.Context, evs []model.Event) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := a.central.PostEvents(cctx, evs)
	return err
}

// watchSet long-polls the decision set and re-syncs images when it changes.
func (a *Agent) watchSet(ctx context.Context, etag string) {
	backoff := time.Second
	for ctx.Err() == nil {
		tag, changed, err := a.fetchSet(ctx, etag, 25*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Debug("decision set poll failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 4*time.Second)
			continue
		}
		backoff = time.Second
		etag = tag
		if changed || len(a.cache.Held()) < len(a.cache.Needed()) {
			a.syncImages(ctx, nil)
		}
	}
}

func (a *Agent) heartbeats(ctx context.Context) {
	host, _ := os.Hostname()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var lastBytes uint64
	last := time.Now()
	lt := time.NewTicker(time.Second)
	defer lt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lt.C:
			c := a.tftp.Counters()
			now := time.Now()
			rate := uint64(float64(c.BytesSent-lastBytes) / now.Sub(last).Seconds())
			lastBytes, last = c.BytesSent, now
			a.elector.SetLoad(uint32(max(c.Active, 0)), rate)
			continue
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := a.central.Heartbeat(hctx, api.Heartbeat{
			Host: host, Subnets: []string{a.prefix.String()}, Addresses: []string{a.ip.String()}, Version: Version,
			Weight: a.cfg.Weight, Load: float64(a.tftp.Counters().Active), Images: a.cache.Held(),
		})
		cancel()
		a.centralUp.Store(err == nil)
	}
}

// pipeline is one raw socket, engine and PXE server.
type pipeline struct {
	ports    []uint16
	snooping bool
}

// startEngine starts the PXE pipelines: 67 and 4011 normally; on
// DHCP-snooping networks the snoop server port (requests forwarded by the
// responder, answered on the snoop client port) plus 4011, where clients
// unicast their boot-server request (snooping does not filter it).
// inlineMax is how many requests of one read the packet reader answers
// itself. The full agent's decisions wait for the election and for Central,
// so the reader hands every request to the workers and keeps reading: a
// reader blocked in a decision lets the kernel ring overflow under load.
const inlineMax = 0

func (a *Agent) startEngine(ctx context.Context) (<-chan error, error) {
	cfg := a.cfg
	pipes := []pipeline{{ports: []uint16{pxe.PortDHCPServer, pxe.PortBootServer}}}
	if cfg.Snooping {
		pipes = []pipeline{{ports: []uint16{uint16(cfg.SnoopServerPort)}, snooping: true}, {ports: []uint16{pxe.PortBootServer}}}
	}
	// The raw socket sees boot-server requests; a claimed UDP port (which
	// drops everything in the kernel) keeps the host from answering them
	// with ICMP port unreachable.
	sink, err := rawsock.ClaimUDPPort(cfg.Interface, pxe.PortBootServer)
	if err != nil {
		return nil, fmt.Errorf("port %d: %w", pxe.PortBootServer, err)
	}
	var socks []*rawsock.Socket
	fail := func(err error) (<-chan error, error) {
		for _, s := range socks {
			s.Close()
		}
		sink.Close()
		return nil, err
	}
	for _, p := range pipes {
		srv, err := pxe.New(ctx, pxe.Config{
			ServerIP: a.ip, Decider: a.decider, Snooping: p.snooping,
			SnoopServerPort: uint16(cfg.SnoopServerPort), SnoopClientPort: uint16(cfg.SnoopClientPort),
			PerMACRate: cfg.PerMACRate, PerMACBurst: 8, GlobalRate: cfg.GlobalRate, GlobalBurst: 2000, Logger: a.log,
		})
		if err != nil {
			return fail(err)
		}
		sock, err := rawsock.Open(rawsock.Config{Interface: cfg.Interface, Ports: p.ports, SourceIP: a.ip})
		if err != nil {
			return fail(fmt.Errorf("packet socket on %s: %w", cfg.Interface, err))
		}
		socks = append(socks, sock)
		eng, err := engine.New(engine.Config{Socket: sock, Handler: srv, Workers: cfg.Workers,
			Batch: 64, InlineMax: inlineMax, Logger: a.log})
		if err != nil {
			return fail(err)
		}
		a.pxes = append(a.pxes, srv)
		a.engines = append(a.engines, eng)
	}
	done := make(chan error, 1)
	go func() {
		errc := make(chan error, len(a.engines))
		for _, eng := range a.engines {
			go func() { errc <- eng.Run(ctx) }()
		}
		var first error
		for range a.engines {
			if err := <-errc; err != nil && first == nil {
				first = err
				if ctx.Err() == nil {
					done <- err // an engine failed: the agent stops
					done = nil
				}
			}
		}
		sink.Close()
		if done != nil {
			done <- first
		}
	}()
	return done, nil
}

func (a *Agent) startTFTP(ctx context.Context, record func(model.Event)) error {
	cfg := a.cfg
	src := cache.Chain{a.cache}
	if cfg.TFTPRoot != "" {
		ds, err := tftp.NewDirSource(cfg.TFTPRoot)
		if err != nil {
			return fmt.Errorf("setting tftp-root: %w", err)
		}
		src = append(src, ds)
	}
	srv, err := tftp.New(tftp.Config{
		Source: src, MaxBlksize: cfg.TFTPMaxBlksize, MaxWindowsize: cfg.TFTPMaxWindow, MaxSessions: cfg.TFTPMaxSessions,
		Logger: a.log, OnTransfer: func(ts tftp.TransferStats) { a.onTransfer(ts, record) },
	})
	if err != nil {
		return err
	}
	a.tftp = srv
	conn, err := tftp.Listen(fmt.Sprintf("%s:%d", a.ip, cfg.TFTPPort))
	if err != nil {
		return fmt.Errorf("TFTP port %d: %w", cfg.TFTPPort, err)
	}
	a.tftpDone = make(chan struct{})
	go func() {
		defer close(a.tftpDone)
		if err := srv.Serve(ctx, conn); err != nil && ctx.Err() == nil {
			a.log.Error("tftp server stopped", "err", err)
		}
		conn.Close()
	}()
	return nil
}

func (a *Agent) onTransfer(ts tftp.TransferStats, record func(model.Event)) {
	v, _ := a.transfers.LoadOrStore(string(ts.Outcome), new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
	image, _, _ := strings.Cut(ts.File, "/")
	if _, ok := a.cache.Image(image); !ok {
		image = ""
	}
	detail, _ := json.Marshal(map[string]any{
		"client": ts.Client, "file": ts.File, "size": ts.Size, "bytes": ts.Bytes, "blksize": ts.Blksize,
		"windowsize": ts.Windowsize, "retransmits": ts.Retransmits, "duration_ms": ts.Duration.Milliseconds(),
		"outcome": ts.Outcome,
	})
	sub := a.prefix.String()
	record(model.Event{Time: time.Now().UTC(), Type: model.EventTransfer, Subnet: sub, ImageID: image, Detail: detail})
	if ts.Outcome == tftp.OutcomeComplete && image != "" {
		record(model.Event{Time: time.Now().UTC(), Type: model.EventPXEBoot, Subnet: sub, ImageID: image, Detail: detail})
	}
}

// pxeStats sums the PXE servers' counters.
func (a *Agent) pxeStats() pxe.Stats {
	var t pxe.Stats
	for _, s := range a.pxes {
		p := s.Stats()
		t.Handled += p.Handled
		t.Malformed += p.Malformed
		t.NotPXE += p.NotPXE
		t.WrongPort += p.WrongPort
		t.RateLimited += p.RateLimited
		t.Ignored += p.Ignored
		t.Aborted += p.Aborted
		t.DecideErrors += p.DecideErrors
		t.BuildErrors += p.BuildErrors
		t.Offers += p.Offers
		t.Acks += p.Acks
		t.IPXEClients += p.IPXEClients
		t.RelayedOffers += p.RelayedOffers
	}
	return t
}

// engineCounters sums the engines' counters.
func (a *Agent) engineCounters() engine.Counters {
	var t engine.Counters
	for _, e := range a.engines {
		c := e.Counters()
		t.Received += c.Received
		t.Filtered += c.Filtered
		t.DroppedRingFull += c.DroppedRingFull
		t.Malformed += c.Malformed
		t.Ignored += c.Ignored
		t.Sent += c.Sent
		t.SendErrors += c.SendErrors
	}
	return t
}

// broadcastAddr is the directed broadcast address of an IPv4 prefix.
func broadcastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
