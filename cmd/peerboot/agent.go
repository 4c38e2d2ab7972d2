package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	tftplib "github.com/pin/tftp/v3"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/pxe"
)

func init() {
	register(command{name: "agent", summary: "serve PXE (ProxyDHCP, 4011, TFTP) on a subnet", run: runAgent})
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// agentConfig is every agent setting. Standalone mode uses the boot table;
// the Central client and the election add their settings here later.
type agentConfig struct {
	Standalone  bool
	Interface   string
	ServerIP    string
	TFTPRoot    string
	Bootfiles   listFlag
	IPXEScript  string
	IgnoreMACs  listFlag
	Snooping    bool
	Workers     int
	PerMACRate  float64
	GlobalRate  float64
	DecisionTTL time.Duration
	LogLevel    string
	StatsFile   string
}

func (c *agentConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Standalone, "standalone", false, "serve on one interface with no Central and no peers")
	fs.StringVar(&c.Interface, "interface", "", "interface to serve (required)")
	fs.StringVar(&c.ServerIP, "server-ip", "", "IPv4 address clients reach this agent at (default: the interface's first IPv4 address)")
	fs.StringVar(&c.TFTPRoot, "tftp-root", "", "directory served by TFTP (required)")
	fs.Var(&c.Bootfiles, "bootfile", "ARCH=PATH boot file by architecture, repeatable; ARCH is one of "+strings.Join(pxe.ClassNames(), ", "))
	fs.StringVar(&c.IPXEScript, "ipxe-script", "", "script (TFTP path or URL) handed to iPXE clients instead of the boot file")
	fs.Var(&c.IgnoreMACs, "ignore-mac", "MAC address never answered, repeatable")
	fs.BoolVar(&c.Snooping, "snooping", false, "DHCP-snooping mode: serve on 2067 and answer on 2068")
	fs.IntVar(&c.Workers, "workers", 2, "packet handler goroutines")
	fs.Float64Var(&c.PerMACRate, "per-mac-rate", 4, "requests per second answered per client (negative: no limit)")
	fs.Float64Var(&c.GlobalRate, "global-rate", 20000, "requests per second answered in total (negative: no limit)")
	fs.DurationVar(&c.DecisionTTL, "decision-ttl", 5*time.Minute, "how long retries of a client get the same answer")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.StatsFile, "stats-file", "", "write the counters as JSON to this file on exit")
}

// readConfigFile turns a config file of "name = value" lines (the flag
// names; # comments) into flag arguments placed before the command line's,
// so flags given on the command line win.
func readConfigFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("config file %s line %d: want name = value", path, n)
		}
		args = append(args, "--"+name+"="+value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return args, nil
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg agentConfig
	fs := newFlagSet("agent", stderr)
	cfg.flags(fs)
	configPath := fs.String("config", "", "configuration file of name = value lines (same names as the flags)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath != "" {
		fileArgs, err := readConfigFile(*configPath)
		if err != nil {
			return err
		}
		cfg = agentConfig{}
		fs = newFlagSet("agent", stderr)
		cfg.flags(fs)
		fs.String("config", "", "")
		if err := parseFlags(fs, append(fileArgs, args...)); err != nil {
			return err
		}
	}
	if !cfg.Standalone {
		return fmt.Errorf("%w: only --standalone is available in this version (Central and peers come later)", errUsage)
	}
	a, err := newStandaloneAgent(cfg, stderr)
	if err != nil {
		return err
	}
	return a.run(ctx, stdout)
}

// agent wires the packet engine, the PXE policy and the TFTP server.
type agent struct {
	cfg      agentConfig
	log      *slog.Logger
	serverIP netip.Addr
	decider  pxe.Decider
	pxe      *pxe.Server
	files    fileServer
}

// fileServer serves boot files until ctx ends.
type fileServer interface {
	Serve(ctx context.Context) error
}

func newStandaloneAgent(cfg agentConfig, stderr io.Writer) (*agent, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: %v", errUsage, cfg.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%w: --interface is required", errUsage)
	}
	if cfg.TFTPRoot == "" {
		return nil, fmt.Errorf("%w: --tftp-root is required", errUsage)
	}
	if st, err := os.Stat(cfg.TFTPRoot); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--tftp-root %q is not a directory", cfg.TFTPRoot)
	}
	pol := &pxe.StaticPolicy{}
	for _, b := range cfg.Bootfiles {
		if err := pol.Table.Parse(b); err != nil {
			return nil, fmt.Errorf("%w: --bootfile: %v", errUsage, err)
		}
	}
	if pol.Table.Empty() {
		return nil, fmt.Errorf("%w: at least one --bootfile ARCH=PATH is required", errUsage)
	}
	pol.Table.IPXEScript = cfg.IPXEScript
	for _, m := range cfg.IgnoreMACs {
		if err := pol.IgnoreMAC(m); err != nil {
			return nil, fmt.Errorf("%w: --ignore-mac: %v", errUsage, err)
		}
	}
	ip, err := agentAddress(cfg)
	if err != nil {
		return nil, err
	}
	return &agent{
		cfg:      cfg,
		log:      log,
		serverIP: ip,
		decider:  pxe.NewSticky(pol, cfg.DecisionTTL),
		files:    &tftpServer{root: cfg.TFTPRoot, addr: netip.AddrPortFrom(ip, 69), log: log},
	}, nil
}

// agentAddress is --server-ip or the interface's first IPv4 address.
func agentAddress(cfg agentConfig) (netip.Addr, error) {
	if cfg.ServerIP != "" {
		ip, err := netip.ParseAddr(cfg.ServerIP)
		if err != nil || !ip.Is4() {
			return netip.Addr{}, fmt.Errorf("%w: --server-ip %q is not an IPv4 address", errUsage, cfg.ServerIP)
		}
		return ip, nil
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--interface %q: %w", cfg.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--interface %q: %w", cfg.Interface, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("--interface %q has no IPv4 address (set --server-ip)", cfg.Interface)
}

// agentStats is what the agent reports on exit.
type agentStats struct {
	Engine engine.Counters `json:"engine"`
	PXE    pxe.Stats       `json:"pxe"`
	TFTP   tftpCounters    `json:"tftp"`
}

func (a *agent) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ports := []uint16{pxe.PortDHCPServer, pxe.PortBootServer}
	if a.cfg.Snooping {
		ports = []uint16{pxe.PortSnoopServer}
	}
	srv, err := pxe.New(ctx, pxe.Config{
		ServerIP: a.serverIP, Decider: a.decider, Snooping: a.cfg.Snooping,
		PerMACRate: a.cfg.PerMACRate, PerMACBurst: 8, GlobalRate: a.cfg.GlobalRate, GlobalBurst: 2000,
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.pxe = srv
	sock, err := rawsock.Open(rawsock.Config{Interface: a.cfg.Interface, Ports: ports, SourceIP: a.serverIP})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// The raw socket sees the boot-server requests; a bound UDP socket on
	// 4011 keeps the kernel from answering them with ICMP port unreachable.
	var sink net.PacketConn
	if !a.cfg.Snooping {
		sink, err = net.ListenPacket("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), pxe.PortBootServer).String())
		if err != nil {
			sock.Close()
			return fmt.Errorf("agent: port %d: %w", pxe.PortBootServer, err)
		}
		defer sink.Close()
	}
	eng, err := engine.New(engine.Config{Socket: sock, Handler: srv, Workers: a.cfg.Workers, Logger: a.log})
	if err != nil {
		sock.Close()
		return err
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := eng.Run(ctx); err != nil {
			errc <- err
		}
		cancel()
	}()
	go func() {
		defer wg.Done()
		if err := a.files.Serve(ctx); err != nil {
			errc <- err
		}
		cancel()
	}()
	a.log.Info("agent ready", "mode", "standalone", "interface", a.cfg.Interface, "server", a.serverIP,
		"ports", ports, "tftp_root", a.cfg.TFTPRoot)
	wg.Wait()
	close(errc)
	st := agentStats{Engine: eng.Counters(), PXE: srv.Stats()}
	if t, ok := a.files.(*tftpServer); ok {
		st.TFTP = t.counters()
	}
	b, _ := json.Marshal(st)
	fmt.Fprintf(stdout, "%s\n", b)
	if a.cfg.StatsFile != "" {
		if err := os.WriteFile(a.cfg.StatsFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("agent: stats file: %w", err)
		}
	}
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tftpCounters counts finished transfers.
type tftpCounters struct {
	Completed uint64 `json:"completed"`
	Failed    uint64 `json:"failed"`
}

// tftpServer serves the TFTP root read-only. It confines every request to
// the root with os.Root.
type tftpServer struct {
	root string
	addr netip.AddrPort
	log  *slog.Logger

	mu sync.Mutex
	c  tftpCounters
}

func (t *tftpServer) counters() tftpCounters {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

func (t *tftpServer) Serve(ctx context.Context) error {
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	defer root.Close()
	read := func(name string, rf io.ReaderFrom) error {
		name = strings.TrimPrefix(strings.ReplaceAll(name, "\\", "/"), "/")
		f, err := root.Open(name)
		if err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("tftp: %s is not a regular file", name)
		}
		if ot, ok := rf.(tftplib.OutgoingTransfer); ok {
			ot.SetSize(st.Size())
		}
		_, err = rf.ReadFrom(f)
		return err
	}
	s := tftplib.NewServer(read, nil)
	s.SetBlockSize(1468)
	s.SetTimeout(2 * time.Second)
	s.SetHook(t)
	conn, err := net.ListenPacket("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), t.addr.Port()).String())
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(conn) }()
	select {
	case <-ctx.Done():
		s.Shutdown()
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("tftp: %w", err)
	}
}

// OnSuccess implements the TFTP library's transfer hook.
func (t *tftpServer) OnSuccess(st tftplib.TransferStats) {
	t.mu.Lock()
	t.c.Completed++
	t.mu.Unlock()
	t.log.Info("tftp transfer done", "client", st.RemoteAddr.String(), "file", st.Filename,
		"duration", st.Duration, "datagrams", st.DatagramsSent)
}

// OnFailure implements the TFTP library's transfer hook.
func (t *tftpServer) OnFailure(st tftplib.TransferStats, err error) {
	t.mu.Lock()
	t.c.Failed++
	t.mu.Unlock()
	t.log.Info("tftp transfer failed", "client", st.RemoteAddr.String(), "file", st.Filename, "err", err)
}
