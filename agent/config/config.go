package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of a full (Central-backed) agent.
type Config struct {
	// Network.
	Interface string // interface to serve (one agent process per interface)
	ServerIP  string // IPv4 clients reach this agent at; "" = the interface's first IPv4 address

	// Central.
	CentralURL     string
	EnrollmentKey  string
	CentralCA      string        // PEM file of certificates trusted for Central's TLS; "" = the system's
	CentralTimeout time.Duration // one boot decision asked of Central; then the cached set answers
	MaxStale       time.Duration // the cached decision set is not used when older than this

	// Election.
	ElectionPort int
	ElectionKey  string // site key; "" = derived from the enrollment key
	Weight       int    // 0-99; 0 = never answer
	ElectionWait time.Duration
	Reserve      time.Duration
	Heartbeat    time.Duration // election heartbeat interval
	LoadEpoch    time.Duration // election load epoch; 0 = 10 heartbeats

	// DHCP snooping.
	Snooping        bool
	SnoopServerPort int
	SnoopClientPort int

	// TFTP.
	TFTPRoot        string // extra files served when not in the image cache; "" = none
	TFTPPort        int
	TFTPMaxBlksize  int
	TFTPMaxWindow   int
	TFTPMaxSessions int
	DrainTimeout    time.Duration // on shutdown, running transfers get this long to finish

	// Image cache and event spool.
	CacheDir  string
	CacheSize int64 // bytes
	SpoolDir  string

	// Policy.
	IgnoreMACs []string
	Workers    int
	PerMACRate float64
	GlobalRate float64

	// Operations.
	LogFormat     string // text or json
	LogLevel      string // debug, info, warn, error
	MetricsListen string // ADDR:PORT for /metrics and /healthz; "" = off
	Progress      bool   // show a progress bar while images sync
}

// setting describes one configuration value: its name (the flag and the
// file key), how its environment variable is spelt, and its default.
type setting struct {
	name  string
	usage string
	def   string
	value flag.Value
}

// EnvName returns the environment variable of a setting name.
func EnvName(name string) string {
	return "PEERBOOT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Set is a parser bound to one Config.
type Set struct {
	cfg      *Config
	fs       *flag.FlagSet
	settings []setting
	config   string
}

// NewSet returns the flag set of every setting, writing into cfg. The
// defaults are applied at once.
func NewSet(cfg *Config, name string, out io.Writer) *Set {
	s := &Set{cfg: cfg, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	s.fs.SetOutput(out)
	s.str(&cfg.Interface, "interface", "", "network interface to serve PXE clients on (required)")
	s.str(&cfg.ServerIP, "server-ip", "", "IPv4 address clients reach this agent at (default: the interface's first IPv4 address)")
	s.str(&cfg.CentralURL, "central-url", "", "Central's base URL, e.g. https://central.example:8443 (required)")
	s.str(&cfg.EnrollmentKey, "enrollment-key", "", "site enrollment key printed by Central on first start (required on first start)")
	s.str(&cfg.CentralCA, "central-ca", "", "PEM file of the CA (or self-signed certificate) Central's TLS certificate is checked against (default: the system's CAs)")
	s.dur(&cfg.CentralTimeout, "central-timeout", 750*time.Millisecond, "how long one boot decision may wait for Central before the cached decision set answers")
	s.dur(&cfg.MaxStale, "max-stale", 24*time.Hour, "oldest cached decision set used while Central is unreachable")
	s.integer(&cfg.ElectionPort, "election-port", 2012, "UDP port of the subnet election")
	s.str(&cfg.ElectionKey, "election-key", "", "site key authenticating election messages, at least 16 characters (default: derived from the enrollment key)")
	s.integer(&cfg.Weight, "weight", 50, "election weight 0-99; 0 never answers clients")
	s.dur(&cfg.ElectionWait, "election-wait", 200*time.Millisecond, "how long the next agent in rank waits for a claim before answering (ElectionWaitSecs)")
	s.dur(&cfg.Reserve, "reserve", 30*time.Second, "how long a claim keeps a client on its agent (ReserveSecs)")
	s.dur(&cfg.Heartbeat, "election-heartbeat", time.Second, "election heartbeat interval; an agent silent for 3 intervals leaves the view")
	s.dur(&cfg.LoadEpoch, "election-load-epoch", 0, "how often announced weights and loads take effect (0: 10 heartbeats; at least 4); a new agent answers from its second epoch")
	s.boolean(&cfg.Snooping, "snooping", false, "DHCP-snooping networks: serve on the snoop server port and answer on the snoop client port")
	s.integer(&cfg.SnoopServerPort, "snoop-server-port", 2067, "port requests arrive on in snooping mode")
	s.integer(&cfg.SnoopClientPort, "snoop-client-port", 2068, "port replies go to in snooping mode")
	s.str(&cfg.TFTPRoot, "tftp-root", "", "directory of extra files served by TFTP when not in the image cache (default: none)")
	s.integer(&cfg.TFTPPort, "tftp-port", 69, "TFTP port")
	s.integer(&cfg.TFTPMaxBlksize, "tftp-max-blksize", 65464, "largest TFTP block size granted (8-65464, also clamped to the path MTU - 32; clients that do not ask get 512)")
	s.integer(&cfg.TFTPMaxWindow, "tftp-max-window", 64, "largest RFC 7440 windowsize granted (1-65535)")
	s.integer(&cfg.TFTPMaxSessions, "tftp-max-sessions", 4096, "concurrent TFTP transfers; more get \"server busy\"")
	s.dur(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long running transfers may take to finish")
	s.str(&cfg.CacheDir, "cache-dir", "/var/cache/peerboot", "directory of the image cache and the agent's state")
	s.size(&cfg.CacheSize, "cache-size", 10<<30, "image cache size limit (bytes, or with K, M, G, T suffix)")
	s.str(&cfg.SpoolDir, "spool-dir", "", "directory of the event spool (default: CACHE-DIR/spool)")
	s.list(&cfg.IgnoreMACs, "ignore-mac", "MAC address never answered (repeatable, or comma separated)")
	s.integer(&cfg.Workers, "workers", 16, "packet handler goroutines (each may wait one election)")
	s.float(&cfg.PerMACRate, "per-mac-rate", 4, "requests answered per second per client (negative: no limit)")
	s.float(&cfg.GlobalRate, "global-rate", 20000, "requests answered per second in total (negative: no limit)")
	s.str(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	s.str(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	s.str(&cfg.MetricsListen, "metrics-listen", "127.0.0.1:9120", "ADDR:PORT serving /metrics and /healthz (empty: off)")
	s.boolean(&cfg.Progress, "progress", true, "show a progress bar on stderr while images sync")
	s.fs.StringVar(&s.config, "config", "", "configuration file of name = value lines (the flag names); env "+EnvName("config"))
	return s
}

// FlagSet exposes the flags (for help output).
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

// Settings lists every setting name, its environment variable and default,
// in declaration order (for documentation).
func (s *Set) Settings() [][4]string {
	out := make([][4]string, 0, len(s.settings))
	for _, st := range s.settings {
		out = append(out, [4]string{st.name, EnvName(st.name), st.def, st.usage})
	}
	return out
}

// ErrUsage marks errors of the command line itself.
var ErrUsage = errors.New("usage")

// Load fills the Config from the file named by --config (or
// PEERBOOT_CONFIG), then the environment, then args; flags win over the
// environment, which wins over the file. It then validates the result.
func (s *Set) Load(args []string, env func(string) string) error {
	if env == nil {
		env = os.Getenv
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments: %v", ErrUsage, s.fs.Args())
	}
	if err := s.apply(env); err != nil {
		return err
	}
	return s.cfg.Validate()
}

// apply sets what the command line left unset from the environment, then
// from the config file.
func (s *Set) apply(env func(string) string) error {
	if env == nil {
		env = os.Getenv
	}
	fromFlags := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { fromFlags[f.Name] = true })
	fromEnv := map[string]bool{}
	for _, st := range s.settings {
		if fromFlags[st.name] {
			continue
		}
		if v, ok := lookup(env, EnvName(st.name)); ok {
			if err := st.value.Set(v); err != nil {
				return fmt.Errorf("%s=%q: %v", EnvName(st.name), v, err)
			}
			fromEnv[st.name] = true
		}
	}
	path := s.config
	if path == "" {
		path, _ = lookup(env, EnvName("config"))
	}
	if path != "" {
		if err := s.loadFile(path, func(name string) bool { return fromFlags[name] || fromEnv[name] }); err != nil {
			return err
		}
	}
	return nil
}

func lookup(env func(string) string, name string) (string, bool) {
	v := env(name)
	return v, v != ""
}

func (s *Set) loadFile(path string, overridden func(string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	return s.loadReader(f, path, overridden)
}

// LoadReader reads a configuration file's text (named name in errors) over
// the defaults and validates the result, as the agent does at start.
func LoadReader(r io.Reader, name string) (Config, error) {
	var cfg Config
	s := NewSet(&cfg, "agent", io.Discard)
	if err := s.loadReader(r, name, func(string) bool { return false }); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func (s *Set) loadReader(f io.Reader, path string, overridden func(string) bool) error {
	byName := map[string]setting{}
	for _, st := range s.settings {
		byName[st.name] = st
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if !ok || name == "" {
			return fmt.Errorf("config file %s line %d: want name = value", path, n)
		}
		st, known := byName[name]
		if !known {
			return fmt.Errorf("config file %s line %d: unknown setting %q", path, n, name)
		}
		if _, isList := st.value.(*listValue); !isList && seen[name] > 0 {
			return fmt.Errorf("config file %s line %d: %s is already set on line %d", path, n, name, seen[name])
		}
		seen[name] = n
		if overridden(name) {
			continue
		}
		if err := st.value.Set(value); err != nil {
			return fmt.Errorf("config file %s line %d: %s = %q: %v", path, n, name, value, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// invalid names a setting in a validation error.
func invalid(name, format string, a ...any) error {
	return fmt.Errorf("setting %s (--%s, %s): %s", name, name, EnvName(name), fmt.Sprintf(format, a...))
}

// Validate checks every setting and returns the first problem, naming it.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if c.Interface == "" {
		add(invalid("interface", "is required"))
	}
	if c.ServerIP != "" {
		if ip, err := netip.ParseAddr(c.ServerIP); err != nil || !ip.Is4() {
			add(invalid("server-ip", "%q is not an IPv4 address", c.ServerIP))
		}
	}
	if c.CentralURL == "" {
		add(invalid("central-url", "is required"))
	} else if u, err := url.Parse(c.CentralURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(invalid("central-url", "%q is not an http:// or https:// URL", c.CentralURL))
	}
	if c.CentralTimeout <= 0 {
		add(invalid("central-timeout", "must be positive"))
	}
	if c.MaxStale <= 0 {
		add(invalid("max-stale", "must be positive"))
	}
	port := func(name string, v int) {
		if v < 1 || v > 65535 {
			add(invalid(name, "%d is not a port (1-65535)", v))
		}
	}
	port("election-port", c.ElectionPort)
	port("snoop-server-port", c.SnoopServerPort)
	port("snoop-client-port", c.SnoopClientPort)
	port("tftp-port", c.TFTPPort)
	if c.ElectionKey != "" && len(c.ElectionKey) < 16 {
		add(invalid("election-key", "is %d characters, need at least 16", len(c.ElectionKey)))
	}
	if c.Weight < 0 || c.Weight > 99 {
		add(invalid("weight", "%d is out of range 0-99", c.Weight))
	}
	if c.ElectionWait <= 0 || c.ElectionWait > 10*time.Second {
		add(invalid("election-wait", "%v is out of range (0, 10s]", c.ElectionWait))
	}
	if c.Heartbeat < 50*time.Millisecond || c.Heartbeat > time.Minute {
		add(invalid("election-heartbeat", "%v is out of range [50ms, 1m]", c.Heartbeat))
	}
	if c.LoadEpoch != 0 && (c.LoadEpoch < 4*c.Heartbeat || c.LoadEpoch > time.Hour) {
		add(invalid("election-load-epoch", "%v must be 0 or between 4 heartbeats (%v) and 1h", c.LoadEpoch, 4*c.Heartbeat))
	}
	if c.Reserve < c.ElectionWait {
		add(invalid("reserve", "%v is shorter than election-wait", c.Reserve))
	}
	if c.TFTPMaxBlksize < 8 || c.TFTPMaxBlksize > 65464 {
		add(invalid("tftp-max-blksize", "%d is out of range 8-65464", c.TFTPMaxBlksize))
	}
	if c.TFTPMaxWindow < 1 || c.TFTPMaxWindow > 65535 {
		add(invalid("tftp-max-window", "%d is out of range 1-65535", c.TFTPMaxWindow))
	}
	if c.TFTPMaxSessions < 1 {
		add(invalid("tftp-max-sessions", "%d must be at least 1", c.TFTPMaxSessions))
	}
	if c.DrainTimeout < 0 {
		add(invalid("drain-timeout", "must not be negative"))
	}
	if c.CacheDir == "" {
		add(invalid("cache-dir", "is required"))
	}
	if c.CacheSize < 1<<20 {
		add(invalid("cache-size", "%d bytes is below the 1M minimum", c.CacheSize))
	}
	for _, m := range c.IgnoreMACs {
		if _, err := parseMAC(m); err != nil {
			add(invalid("ignore-mac", "%q is not a MAC address", m))
		}
	}
	if c.Workers < 1 || c.Workers > 1024 {
		add(invalid("workers", "%d is out of range 1-1024", c.Workers))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add(invalid("log-format", "%q is neither text nor json", c.LogFormat))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		add(invalid("log-level", "%q is not debug, info, warn or error", c.LogLevel))
	}
	if c.MetricsListen != "" {
		if _, err := netip.ParseAddrPort(c.MetricsListen); err != nil && !strings.HasPrefix(c.MetricsListen, ":") {
			add(invalid("metrics-listen", "%q is not ADDR:PORT", c.MetricsListen))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if c.SpoolDir == "" {
		c.SpoolDir = c.CacheDir + "/spool"
	}
	return nil
}

func parseMAC(s string) ([6]byte, error) {
	var m [6]byte
	s = strings.ReplaceAll(s, "-", ":")
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, errors.New("want 6 octets")
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return m, errors.New("bad octet")
		}
		m[i] = byte(v)
	}
	return m, nil
}
