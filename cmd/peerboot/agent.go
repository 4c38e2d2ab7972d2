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
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/engine/udpsock"
	"github.com/peerboot/peerboot/pxe"
	"github.com/peerboot/peerboot/tftp"
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
	TFTPListen  string
	TFTPBlksize int
	TFTPWindow  int
	TFTPMaxSess int
	Bootfiles   listFlag
	IPXEScript  string
	IgnoreMACs  listFlag
	Snooping    bool
	Workers     int
	Inline      int
	UDPBoot     bool
	RingBlock   int
	RxRing      bool
	TxRing      bool
	RingTimeout time.Duration
	MaxProcs    int
	CPUProfile  string
	PerMACRate  float64
	GlobalRate  float64
	LogLevel    string
	StatsFile   string
}

func (c *agentConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Standalone, "standalone", false, "serve on one interface with no Central and no peers")
	fs.StringVar(&c.Interface, "interface", "", "interface to serve (required)")
	fs.StringVar(&c.ServerIP, "server-ip", "", "IPv4 address clients reach this agent at (default: the interface's first IPv4 address)")
	fs.StringVar(&c.TFTPRoot, "tftp-root", "", "directory served by TFTP (required)")
	fs.StringVar(&c.TFTPListen, "tftp-listen", ":69", "UDP address the TFTP server listens on")
	fs.IntVar(&c.TFTPBlksize, "tftp-max-blksize", 65464, "largest TFTP blksize granted (also clamped to the path MTU - 32)")
	fs.IntVar(&c.TFTPWindow, "tftp-max-window", 64, "largest TFTP windowsize (RFC 7440) granted")
	fs.IntVar(&c.TFTPMaxSess, "tftp-max-sessions", 4096, "concurrent TFTP transfers before answering \"server busy\"")
	fs.Var(&c.Bootfiles, "bootfile", "ARCH=PATH boot file by architecture, repeatable; ARCH is one of "+strings.Join(pxe.ClassNames(), ", "))
	fs.StringVar(&c.IPXEScript, "ipxe-script", "", "script (TFTP path or URL) handed to iPXE clients instead of the boot file")
	fs.Var(&c.IgnoreMACs, "ignore-mac", "MAC address never answered, repeatable")
	fs.BoolVar(&c.Snooping, "snooping", false, "DHCP-snooping mode: serve on 2067 and answer on 2068")
	fs.IntVar(&c.Workers, "workers", 2, "packet handler goroutines")
	fs.IntVar(&c.Inline, "inline", 64, "requests of one read the packet reader answers itself, sending the replies together (0: hand every request to the workers)")
	fs.IntVar(&c.RingBlock, "ring-block-size", 0, "bytes per block of the raw socket's receive ring (0: the engine's default)")
	fs.DurationVar(&c.RingTimeout, "ring-timeout", 0, "longest a request waits in a receive ring block that is not full (0: the engine's default, 1ms)")
	fs.BoolVar(&c.RxRing, "rx-ring", true, "read the raw socket through a receive ring, which wakes the agent once per block of requests (false: recvmmsg, one wake-up per request, lower latency at light load)")
	fs.BoolVar(&c.TxRing, "tx-ring", true, "send raw replies through a transmit ring (false: sendmmsg)")
	fs.BoolVar(&c.UDPBoot, "udp-boot-server", false, "serve 4011 through a UDP socket instead of the raw socket")
	fs.StringVar(&c.CPUProfile, "cpu-profile", "", "write a Go CPU profile of the whole run to this file")
	fs.IntVar(&c.MaxProcs, "max-procs", 0, "CPU cores the agent runs Go code on at once (GOMAXPROCS; 0: the runtime's default)")
	fs.Float64Var(&c.PerMACRate, "per-mac-rate", 4, "requests per second answered per client (negative: no limit)")
	fs.Float64Var(&c.GlobalRate, "global-rate", 20000, "requests per second answered in total (negative: no limit)")
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
	if !wantsStandalone(args) {
		return runFullAgent(ctx, args, stdout, stderr) // agent_full.go: Central, election, image cache
	}
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
	a, err := newStandaloneAgent(cfg, stderr)
	if err != nil {
		return err
	}
	return a.run(ctx, stdout)
}

// standaloneAgent wires the packet engine, the PXE policy and the TFTP server.
type standaloneAgent struct {
	cfg      agentConfig
	log      *slog.Logger
	serverIP netip.Addr
	decider  pxe.Decider
}

func newStandaloneAgent(cfg agentConfig, stderr io.Writer) (*standaloneAgent, error) {
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
	if cfg.TFTPBlksize < 8 || cfg.TFTPWindow < 1 || cfg.TFTPMaxSess < 1 {
		return nil, fmt.Errorf("%w: --tftp-max-blksize must be at least 8, --tftp-max-window and --tftp-max-sessions at least 1", errUsage)
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
	// The static table's answer is a function of the client's MAC, boot
	// class and iPXE-ness alone, so retries get the same answer without
	// the cache (pxe.Sticky) that deciders which may change their mind
	// need.
	return &standaloneAgent{cfg: cfg, log: log, serverIP: ip, decider: pol}, nil
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

// agentStats is what the agent reports on exit. Engine sums every
// socket; BootServer is the UDP socket on 4011 alone (with
// --udp-boot-server).
type agentStats struct {
	Engine     engine.Counters `json:"engine"`
	BootServer engine.Counters `json:"boot_server"`
	PXE        pxe.Stats       `json:"pxe"`
	TFTP       tftp.Counters   `json:"tftp"`
	Runtime    runtimeStats    `json:"runtime"`
}

// runtimeStats is what the Go runtime did while the agent served: the
// packet path allocates nothing, so with no TFTP transfer both stay near 0
// whatever the load.
type runtimeStats struct {
	GCs     uint32 `json:"gcs"`     // garbage collections
	Mallocs uint64 `json:"mallocs"` // heap objects allocated
}

// runtimeSince returns the runtime's counts since before.
func runtimeSince(before *runtime.MemStats) runtimeStats {
	var now runtime.MemStats
	runtime.ReadMemStats(&now)
	return runtimeStats{GCs: now.NumGC - before.NumGC, Mallocs: now.Mallocs - before.Mallocs}
}

// sumCounters adds the counters of several engines.
func sumCounters(cs ...engine.Counters) engine.Counters {
	var t engine.Counters
	for _, c := range cs {
		t.Received += c.Received
		t.Reads += c.Reads
		t.Filtered += c.Filtered
		t.DroppedRingFull += c.DroppedRingFull
		t.DroppedKernel += c.DroppedKernel
		t.Malformed += c.Malformed
		t.Ignored += c.Ignored
		t.Sent += c.Sent
		t.SendErrors += c.SendErrors
	}
	return t
}

// run serves until ctx ends: DISCOVERs (67, or 2067 when snooping) and
// boot-server REQUESTs on 4011 through the raw socket with its kernel
// filter (or 4011 through a UDP socket bound to the interface with
// --udp-boot-server; the firmware sends them unicast to this address,
// from 4011 (UEFI) or 68 (BIOS PXE, iPXE) and wants the ACK on the port
// it sent from), and TFTP.
func (a *standaloneAgent) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(a.cfg.MaxProcs)
	}
	if a.cfg.CPUProfile != "" {
		f, err := os.Create(a.cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("agent: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("agent: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := pxe.New(ctx, pxe.Config{
		ServerIP: a.serverIP, Decider: a.decider, Snooping: a.cfg.Snooping,
		PerMACRate: a.cfg.PerMACRate, PerMACBurst: 8, GlobalRate: a.cfg.GlobalRate, GlobalBurst: 2000,
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	files, err := tftp.NewDirSource(a.cfg.TFTPRoot)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer files.Close()
	tsrv, err := tftp.New(tftp.Config{
		Source: files, MaxBlksize: a.cfg.TFTPBlksize, MaxWindowsize: a.cfg.TFTPWindow,
		MaxSessions: a.cfg.TFTPMaxSess, Logger: a.log, OnTransfer: a.logTransfer,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	tconn, err := tftp.Listen(a.cfg.TFTPListen)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer tconn.Close()

	// The raw socket serves 67 (2067 when snooping) and, unless told to
	// use a UDP socket, 4011 too, with a UDP socket holding 4011 so the
	// host's stack does not answer the firmware's unicast requests with
	// ICMP port unreachable.
	rawPorts := []uint16{pxe.PortDHCPServer}
	switch {
	case a.cfg.Snooping:
		rawPorts = []uint16{pxe.PortSnoopServer}
	case !a.cfg.UDPBoot:
		rawPorts = append(rawPorts, pxe.PortBootServer)
		claim, err := rawsock.ClaimUDPPort(a.cfg.Interface, pxe.PortBootServer)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		defer claim.Close()
	}
	raw, err := rawsock.Open(rawsock.Config{Interface: a.cfg.Interface, Ports: rawPorts, SourceIP: a.serverIP,
		RingBlockSize: a.cfg.RingBlock, RingTimeout: a.cfg.RingTimeout, NoRing: !a.cfg.RxRing, NoTxRing: !a.cfg.TxRing})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := raw.RingError(); err != nil {
		a.log.Warn("reading without a receive ring", "err", err)
	}
	if err := raw.TxRingError(); err != nil {
		a.log.Warn("sending without a transmit ring", "err", err)
	}
	socks := []engine.Socket{raw}
	if !a.cfg.Snooping && a.cfg.UDPBoot {
		boot, err := udpsock.Open(udpsock.Config{Port: pxe.PortBootServer, Interface: a.cfg.Interface})
		if err != nil {
			raw.Close()
			return fmt.Errorf("agent: %w", err)
		}
		socks = append(socks, boot)
	}
	engines := make([]*engine.Engine, len(socks))
	for i, sock := range socks {
		if engines[i], err = engine.New(engine.Config{Socket: sock, Handler: srv, Workers: a.cfg.Workers,
			Batch: max(32, a.cfg.Inline), InlineMax: a.cfg.Inline, Logger: a.log}); err != nil {
			for _, s := range socks {
				s.Close()
			}
			return err
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(engines)+1)
	serve := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- err
			}
			cancel()
		}()
	}
	for _, e := range engines {
		serve(e.Run)
	}
	serve(func(ctx context.Context) error { return tsrv.Serve(ctx, tconn) })
	ports := rawPorts
	if !a.cfg.Snooping && a.cfg.UDPBoot {
		ports = append(ports, pxe.PortBootServer)
	}
	var ready runtime.MemStats
	runtime.ReadMemStats(&ready)
	a.log.Info("agent ready", "mode", "standalone", "interface", a.cfg.Interface, "server", a.serverIP,
		"ports", ports, "tftp", tconn.LocalAddr().String(), "tftp_root", a.cfg.TFTPRoot)
	wg.Wait()
	close(errc)
	st := agentStats{PXE: srv.Stats(), TFTP: tsrv.Counters(), Runtime: runtimeSince(&ready)}
	all := make([]engine.Counters, len(engines))
	for i, e := range engines {
		all[i] = e.Counters()
	}
	st.Engine = sumCounters(all...)
	if len(all) > 1 {
		st.BootServer = all[1]
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

// logTransfer reports every TFTP transfer that delivered its whole file.
func (a *standaloneAgent) logTransfer(st tftp.TransferStats) {
	if st.Outcome != tftp.OutcomeComplete {
		return
	}
	a.log.Info("tftp transfer done", "client", st.Client, "file", st.File, "bytes", st.Bytes,
		"blksize", st.Blksize, "windowsize", st.Windowsize, "duration", st.Duration)
}
