package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peerboot/peerboot/agent"
	"github.com/peerboot/peerboot/agent/pxesim"
	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/internal/netlab"
)

// Options configure a site.
type Options struct {
	Exe        string // the peerboot binary
	Subnet     string // a /24 in 198.18.0.0/15 (default 198.18.77.0/24)
	Agents     int    // default 3
	ImageBytes int    // size of the largest boot file (default 4 MiB)
	Dir        string // working directory (logs, data); default a temp dir removed by Close
	AgentArgs  []string
	// Net, when set, is an existing lab (e.g. one with a plain DHCP server
	// and QEMU guests) to build the site in; Subnet is then ignored.
	Net *netlab.Lab
	// CoreSubnet, when set, puts Central in a second subnet (a /24 in
	// 198.18.0.0/15) behind a router (.1 in the core, RouterHost in the
	// branch), as a data centre is from its branch subnets.
	CoreSubnet string
	// CentralArgs are extra flags for Central (e.g. --required-repeat-window).
	CentralArgs []string
	// Provision, when set, puts the site's boot images and deployments into
	// Central (through s.Admin, s.AddImage, ...) once Central is up and
	// before the agents start, instead of the demo images.
	Provision func(ctx context.Context, s *Site) error
	// ReadyTimeout bounds Start's wait for the agents (default 60s).
	ReadyTimeout time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Election timers of the site's agents: short, because a new agent may
// answer from its second load epoch, so 1s epochs make the site ready in
// seconds.
const (
	ElectionHeartbeat = 250 * time.Millisecond
	ElectionLoadEpoch = time.Second
)

// Proc is one daemon process of the site.
type Proc struct {
	Name string
	Host *netlab.Host
	Args []string
	Log  string // its stderr
	cmd  *exec.Cmd
	done chan struct{}
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits for the process to exit and returns its exit code (-1 when
// killed by a signal).
func (p *Proc) Wait() int {
	if p.done == nil {
		return -1
	}
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return errors.New("lab: " + p.Name + " is not running")
	}
	return p.cmd.Process.Signal(sig)
}

// Site is Central, agents and a client namespace on one bridge.
type Site struct {
	opts       Options
	Lab        *netlab.Lab
	Core       *netlab.Lab  // Central's subnet when CoreSubnet is set
	Router     *netlab.Host // between Lab and Core
	Dir        string
	ownDir     bool
	Central    *Proc
	CentralURL string
	AdminToken string
	EnrollKey  string
	Agents     []*Proc
	Clients    *netlab.Host
	Images     []model.Image
	admin      *client.Client
	hc         *http.Client
	mu         sync.Mutex
}

// Subnet addresses.
func host(p netip.Prefix, n byte) string {
	a := p.Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a).String()
}

// Start builds the site and waits until every agent is ready.
func Start(ctx context.Context, o Options) (s *Site, err error) {
	if o.Subnet == "" {
		o.Subnet = "198.18.77.0/24"
	}
	if o.Agents <= 0 {
		o.Agents = 3
	}
	if o.ImageBytes <= 0 {
		o.ImageBytes = 4 << 20
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Exe == "" {
		if o.Exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	s = &Site{opts: o, Dir: o.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "peerboot-lab-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	}
	site := s // the error returns below set s to nil
	defer func() {
		if err != nil {
			site.Close()
		}
	}()
	if o.Net != nil {
		s.Lab = o.Net
	} else if s.Lab, err = netlab.New(o.Subnet); err != nil {
		return nil, err
	}
	p := s.Lab.Prefix
	centralLab := s.Lab
	if o.CoreSubnet != "" {
		if s.Core, err = netlab.New(o.CoreSubnet); err != nil {
			return nil, err
		}
		centralLab = s.Core
		if s.Router, err = s.Lab.AddHost("router", host(p, RouterHost)); err != nil {
			return nil, err
		}
		if err := s.Core.Attach(s.Router, "eth1", host(s.Core.Prefix, 1)); err != nil {
			return nil, err
		}
		if err := s.Router.EnableForwarding(); err != nil {
			return nil, err
		}
	}
	cp := centralLab.Prefix
	ch, err := centralLab.AddHost("central", host(cp, 2))
	if err != nil {
		return nil, err
	}
	if err := s.routeToOther(ch); err != nil {
		return nil, err
	}
	s.Central = &Proc{Name: "central", Host: ch, Log: filepath.Join(s.Dir, "central.log"),
		Args: append([]string{"central", "--listen", host(cp, 2) + ":8080", "--data-dir", filepath.Join(s.Dir, "central")}, o.CentralArgs...)}
	s.CentralURL = "http://" + host(cp, 2) + ":8080"
	// HTTP from this process into the lab dials inside Central's namespace.
	s.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ch.Do(func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 8,
	}}
	s.logf("starting Central on %s", s.CentralURL)
	if err := s.StartCentral(ctx); err != nil {
		return nil, err
	}
	s.admin = client.New(s.CentralURL, s.AdminToken, s.hc)
	provision := o.Provision
	if provision == nil {
		provision = func(ctx context.Context, s *Site) error { return s.addImages(ctx) }
	}
	if err := provision(ctx, s); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	for i := 0; i < o.Agents; i++ {
		name := fmt.Sprintf("agent%d", i+1)
		ip := host(p, byte(11+i))
		h, err := s.Lab.AddHost(name, ip)
		if err != nil {
			return nil, err
		}
		if err := s.routeToOther(h); err != nil {
			return nil, err
		}
		args := append([]string{"agent", "--interface", "eth0", "--central-url", s.CentralURL,
			"--enrollment-key", s.EnrollKey, "--cache-dir", filepath.Join(s.Dir, name),
			"--metrics-listen", ip + ":9120", "--log-format", "json", "--drain-timeout", "5s",
			"--election-heartbeat", ElectionHeartbeat.String(), "--election-load-epoch", ElectionLoadEpoch.String()}, o.AgentArgs...)
		s.Agents = append(s.Agents, &Proc{Name: name, Host: h, Args: args, Log: filepath.Join(s.Dir, name+".log")})
	}
	if s.Clients, err = s.Lab.AddHost("clients", host(p, ClientHost)); err != nil {
		return nil, err
	}
	if err := s.routeToOther(s.Clients); err != nil {
		return nil, err
	}
	s.logf("starting %d agents", o.Agents)
	for i := range s.Agents {
		if err := s.StartAgent(ctx, i); err != nil {
			return nil, err
		}
	}
	if err := s.WaitReady(ctx, o.ReadyTimeout); err != nil {
		return nil, err
	}
	return s, nil
}

// routeToOther routes a host to the other subnet through the router.
func (s *Site) routeToOther(h *netlab.Host) error {
	if s.Core == nil {
		return nil
	}
	if s.Core.Prefix.Contains(h.Addr) {
		return h.AddRoute(s.Lab.Prefix.String(), host(s.Core.Prefix, 1))
	}
	return h.AddRoute(s.Core.Prefix.String(), host(s.Lab.Prefix, RouterHost))
}

// AddCoreHost adds a host in Central's subnet (the main subnet when there
// is no core), routed to the other subnet.
func (s *Site) AddCoreHost(name string, n byte) (*netlab.Host, error) {
	l := s.Lab
	if s.Core != nil {
		l = s.Core
	}
	h, err := l.AddHost(name, host(l.Prefix, n))
	if err != nil {
		return nil, err
	}
	return h, s.routeToOther(h)
}

// StartProc starts a peerboot process in a host of the site; Close kills it.
func (s *Site) StartProc(ctx context.Context, name string, h *netlab.Host, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Host: h, Args: args, Log: filepath.Join(s.Dir, name+".log")}
	return p, s.start(ctx, p, nil)
}

// StartCommand starts another program in a host of the site; Close kills it.
func (s *Site) StartCommand(name string, h *netlab.Host, prog string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Host: h, Args: args, Log: filepath.Join(s.Dir, name+".log")}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := h.Command(context.Background(), prog, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := s.Lab.Start(cmd); err != nil {
		logf.Close()
		return nil, err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

func (s *Site) logf(format string, a ...any) {
	if s.opts.Log != nil {
		fmt.Fprintf(s.opts.Log, format+"\n", a...)
	}
}

// start runs a process in its namespace, stderr to its log file.
func (s *Site) start(ctx context.Context, p *Proc, stdout io.Writer) error {
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := p.Host.Command(context.Background(), s.opts.Exe, p.Args...)
	cmd.Stderr = logf
	cmd.Stdout = stdout
	if stdout == nil {
		cmd.Stdout = logf
	}
	if err := s.Lab.Start(cmd); err != nil {
		logf.Close()
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(p.done)
	return nil
}

// StartCentral starts (or restarts) Central on its data directory.
func (s *Site) StartCentral(ctx context.Context) error {
	pr, pw := io.Pipe()
	if err := s.start(ctx, s.Central, pw); err != nil {
		return err
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "admin token: "):
				s.AdminToken = strings.TrimPrefix(line, "admin token: ")
			case strings.HasPrefix(line, "enrollment key: "):
				s.EnrollKey = strings.TrimPrefix(line, "enrollment key: ")
			case strings.HasPrefix(line, "central: listening"):
				if !sent {
					ready <- nil
					sent = true
				}
			}
		}
		if !sent {
			ready <- fmt.Errorf("central exited before listening: %s", tail(s.Central.Log))
		}
	}()
	go func(done chan struct{}) { <-done; pw.Close() }(s.Central.done)
	select {
	case err := <-ready:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("central did not start in 30s: %s", tail(s.Central.Log))
	}
}

// StopCentral kills Central (as a crash or an outage would).
func (s *Site) StopCentral() { s.stop(s.Central, syscall.SIGKILL) }

// StartAgent starts (or restarts) agent i.
func (s *Site) StartAgent(ctx context.Context, i int) error {
	return s.start(ctx, s.Agents[i], nil)
}

// StopAgent signals agent i and waits for it to exit.
func (s *Site) StopAgent(i int, sig syscall.Signal) { s.stop(s.Agents[i], sig) }

func (s *Site) stop(p *Proc, sig syscall.Signal) {
	if !p.Running() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Health reads agent i's /healthz.
func (s *Site) Health(ctx context.Context, i int) (agent.Health, error) {
	var h agent.Health
	ip := host(s.Lab.Prefix, byte(11+i))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ip+":9120/healthz", nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h, err
}

// Metrics reads agent i's /metrics.
func (s *Site) Metrics(ctx context.Context, i int) (string, error) {
	return s.Get(ctx, "http://"+s.AgentAddr(i).String()+":9120/metrics")
}

// AgentAddr is agent i's address.
func (s *Site) AgentAddr(i int) netip.Addr {
	return netip.MustParseAddr(host(s.Lab.Prefix, byte(11+i)))
}

// AgentIndex maps an address back to an agent (-1 when none).
func (s *Site) AgentIndex(a netip.Addr) int {
	for i := range s.Agents {
		if s.AgentAddr(i) == a {
			return i
		}
	}
	return -1
}

// WaitReady waits until every running agent is ready, holds every needed
// image and sees every running agent in its election view.
func (s *Site) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	running := 0
	for _, a := range s.Agents {
		if a.Running() {
			running++
		}
	}
	for i, a := range s.Agents {
		if !a.Running() {
			continue
		}
		for {
			h, err := s.Health(ctx, i)
			if err == nil && h.Ready && len(h.ImagesHeld) == len(h.ImagesNeeded) && len(h.ImagesNeeded) > 0 && h.ReadyMembers >= running {
				break
			}
			if !a.Running() {
				return fmt.Errorf("%s exited: %s", a.Name, tail(a.Log))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v (health %+v, err %v): %s", a.Name, timeout, h, err, tail(a.Log))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, " | ")
}

// Close stops everything and removes what the site made.
func (s *Site) Close() error {
	var err error
	if s.Lab != nil {
		err = s.Lab.Close()
	}
	if s.Core != nil {
		err = errors.Join(err, s.Core.Close())
	}
	for _, p := range append([]*Proc{s.Central}, s.Agents...) {
		if p != nil && p.done != nil {
			<-p.done
		}
	}
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
	return err
}

// imageSpec is one demo boot image.
type imageSpec struct {
	id    string
	arch  model.Arch
	prio  int
	files map[string]int // name -> fraction of ImageBytes in 1/8ths
}

var demoImages = []imageSpec{
	{"demo-x64", model.ArchX64, 30, map[string]int{"bootx64.efi": 8, "undionly.kpxe": 4}},
	{"demo-x86", model.ArchX86, 20, map[string]int{"bootia32.efi": 6}},
	{"demo-arm64", model.ArchARM64, 10, map[string]int{"bootaa64.efi": 7}},
}

// addImages uploads the demo images and deploys each to unknown computers.
func (s *Site) addImages(ctx context.Context) error {
	for i, spec := range demoImages {
		names := make([]string, 0, len(spec.files))
		for n := range spec.files {
			names = append(names, n)
		}
		sortStrings(names)
		files := map[string][]byte{}
		for j, n := range names {
			files[n] = RandomBytes(s.opts.ImageBytes*spec.files[n]/8, uint64(i), uint64(j))
		}
		if _, err := s.AddImage(ctx, spec.id, spec.arch, spec.prio, files); err != nil {
			return err
		}
	}
	return nil
}

// RandomBytes returns n reproducible pseudo-random bytes.
func RandomBytes(n int, seed1, seed2 uint64) []byte {
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed1, seed2))
	for k := 0; k+8 <= len(data); k += 8 {
		v := r.Uint64()
		for b := 0; b < 8; b++ {
			data[k+b] = byte(v >> (8 * b))
		}
	}
	return data
}

// AddImage uploads files as a boot image and deploys it to unknown
// computers with a priority.
func (s *Site) AddImage(ctx context.Context, id string, arch model.Arch, prio int, files map[string][]byte) (model.Image, error) {
	img := model.Image{ID: id, Arch: arch, Description: "peerboot demo image"}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		data := files[n]
		sum := sha256.Sum256(data)
		hexsum := hex.EncodeToString(sum[:])
		req, _ := http.NewRequestWithContext(ctx, "PUT", s.CentralURL+"/api/v1/blobs/"+hexsum, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
		resp, err := s.hc.Do(req)
		if err != nil {
			return img, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return img, fmt.Errorf("upload %s: %s: %s", n, resp.Status, body)
		}
		img.Files = append(img.Files, model.ImageFile{Name: n, Size: int64(len(data)), SHA256: hexsum})
	}
	if err := s.admin.Do(ctx, "POST", "/api/v1/images", img, nil); err != nil {
		return img, fmt.Errorf("image %s: %w", img.ID, err)
	}
	dep := model.Deployment{ID: "unknown-" + id, UnknownComputers: true, ImageID: id, Priority: prio}
	if err := s.admin.Do(ctx, "POST", "/api/v1/deployments", dep, nil); err != nil {
		return img, fmt.Errorf("deployment %s: %w", dep.ID, err)
	}
	s.Images = append(s.Images, img)
	return img, nil
}

// Admin is a client of Central's admin API (with the admin token) that
// dials from Central's namespace.
func (s *Site) Admin() *client.Client { return s.admin }

// CentralMetrics reads Central's /metrics.
func (s *Site) CentralMetrics(ctx context.Context) (string, error) {
	return s.Get(ctx, s.CentralURL+"/metrics")
}

// Get fetches a URL inside the site (from Central's namespace).
func (s *Site) Get(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// Events reads Central's recent events of a type ("" = all).
func (s *Site) Events(ctx context.Context, typ string) ([]model.Event, error) {
	var evs []model.Event
	path := "/api/v1/events?limit=10000"
	if typ != "" {
		path += "&type=" + typ
	}
	err := s.admin.Do(ctx, "GET", path, nil, &evs)
	return evs, err
}

// RouterHost is the router's host number in the branch subnet.
const RouterHost = 253

// ClientHost is the host number of the simulated clients' namespace
// (outside the .100-.150 a lab DHCP server leases).
const ClientHost = 200

// Arches is the mix of client architectures simulated clients cycle
// through: BIOS, UEFI x64 (both codes), UEFI IA32 and UEFI ARM64.
var Arches = []uint16{0, 7, 9, 6, 11}

// NewClient returns simulated client i.
func (s *Site) NewClient(i int) *pxesim.Client {
	mac := net.HardwareAddr{0x02, 0x50, 0x42, 0x00, byte(i >> 8), byte(i)}
	var guid [16]byte
	copy(guid[:], fmt.Sprintf("pbdemo-%09d", i))
	return &pxesim.Client{
		MAC: mac, GUID: guid, Arch: Arches[i%len(Arches)], Interface: "eth0",
		Addr: netip.MustParseAddr(host(s.Lab.Prefix, ClientHost)), Wait: 1500 * time.Millisecond, Tries: 6,
	}
}

// Boot runs one simulated client inside the client namespace.
func (s *Site) Boot(ctx context.Context, c *pxesim.Client) (pxesim.Result, error) {
	var res pxesim.Result
	err := s.Clients.Do(func() error {
		var err error
		res, err = c.Boot(ctx, io.Discard)
		return err
	})
	return res, err
}

// ErrNotRoot explains what the lab needs.
var ErrNotRoot = errors.New("needs root (network namespaces, raw sockets, ports 67/69/4011): run it with sudo")
