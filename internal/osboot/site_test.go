//go:build osboot

package osboot_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/internal/netlab"
)

// site is a firmware lab with peerboot Central (SQLite) at .2 and agents
// at .11, .12, ... on the same subnet.
type site struct {
	*osLab
	centralURL string
	token, key string
	admin      *client.Client
	hc         *http.Client
	agents     []*daemon
	imageID    string
}

// daemon is one peerboot process of the site.
type daemon struct {
	name string
	host *netlab.Host
	addr netip.Addr
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return d.cmd != nil
	}
}

// stop kills the process (SIGKILL: an agent that dies, not one that
// drains) and waits for it.
func (d *daemon) stop() {
	if d.running() {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// Short election timers: a new agent answers clients from its second
// load epoch, and a BIOS iPXE ROM gives up DHCP after a few seconds, so the
// site must be answering before the guests power on.
const (
	electionHeartbeat = 250 * time.Millisecond
	electionLoadEpoch = time.Second
)

// requiredRepeatWindow: a repeat DISCOVER this soon after a required
// deployment was handed out is the same boot (the firmware, then iPXE).
const requiredRepeatWindow = 45 * time.Second

// newSite starts Central, registers the Linux image from the artefacts
// and starts n agents, waiting until each holds the image and sees the
// others in its election.
func newSite(t *testing.T, ctx context.Context, subnet string, n int, agentArgs ...string) *site {
	t.Helper()
	s := &site{osLab: newOSLab(t, ctx, subnet), imageID: "linux-x64"}
	ch, err := s.Net.AddHost("central", s.Addr(2).String())
	if err != nil {
		t.Fatal(err)
	}
	s.centralURL = "http://" + s.Addr(2).String() + ":8080"
	s.hc = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		// This process is outside the lab: dial from Central's namespace.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ch.Do(func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	central := &daemon{name: "central", host: ch, addr: s.Addr(2), log: filepath.Join(s.dir, "central.log")}
	pr, pw := io.Pipe()
	s.start(t, central, pw, "central", "--listen", s.Addr(2).String()+":8080",
		"--data-dir", filepath.Join(s.dir, "central"), "--required-repeat-window", requiredRepeatWindow.String())
	go func() { <-central.done; pw.Close() }()
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		ok := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "admin token: "):
				s.token = strings.TrimPrefix(line, "admin token: ")
			case strings.HasPrefix(line, "enrollment key: "):
				s.key = strings.TrimPrefix(line, "enrollment key: ")
			case strings.Contains(line, "listening on") && !ok:
				ok = true
				listening <- true
			}
		}
		if !ok {
			listening <- false
		}
	}()
	select {
	case ok := <-listening:
		if !ok || s.token == "" || s.key == "" {
			t.Fatalf("central did not start (token %v, key %v)", s.token != "", s.key != "")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("central did not listen within 30s")
	}
	s.admin = client.New(s.centralURL, s.token, s.hc)
	var img model.Image
	if err := s.admin.Do(ctx, "POST", "/api/v1/images/register", api.RegisterRequest{
		ID: s.imageID, Arch: model.ArchX64, Description: "iPXE + Debian kernel + busybox initramfs", Dir: s.art.Root}, &img); err != nil {
		t.Fatalf("register image: %v", err)
	}
	for i := 0; i < n; i++ {
		a := &daemon{name: fmt.Sprintf("agent%d", i+1), addr: s.Addr(byte(11 + i))}
		if a.host, err = s.Net.AddHost(a.name, a.addr.String()); err != nil {
			t.Fatal(err)
		}
		a.log = filepath.Join(s.dir, a.name+".log")
		args := append([]string{"agent", "--interface", "eth0", "--central-url", s.centralURL,
			"--enrollment-key", s.key, "--cache-dir", filepath.Join(s.dir, a.name),
			"--metrics-listen", a.addr.String() + ":9120", "--progress=false", "--log-level", "debug",
			"--election-heartbeat", electionHeartbeat.String(), "--election-load-epoch", electionLoadEpoch.String()}, agentArgs...)
		s.start(t, a, nil, args...)
		s.agents = append(s.agents, a)
	}
	return s
}

// start runs a peerboot process in its namespace, output in its log.
func (s *site) start(t *testing.T, d *daemon, stdout io.Writer, args ...string) {
	t.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("--- %s log (tail):\n%s", d.name, tail(b, 30))
		}
	})
	d.cmd = d.host.Command(context.Background(), s.bin, args...)
	d.cmd.Stderr, d.cmd.Stdout = logf, logf
	if stdout != nil {
		d.cmd.Stdout = io.MultiWriter(logf, stdout)
	}
	if err := s.Net.Start(d.cmd); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); logf.Close(); close(d.done) }()
}

// health is the part of an agent's /healthz the tests read.
type health struct {
	Agent        string   `json:"agent"`
	Ready        bool     `json:"ready"`
	ImagesHeld   []string `json:"images_held"`
	ImagesNeeded []string `json:"images_needed"`
	Members      int      `json:"election_members"`
}

// waitAgents waits until every running agent is ready, holds the images
// its subnet needs and sees every running agent in its election, then for
// two election load epochs, after which new agents answer clients.
func (s *site) waitAgents(t *testing.T, ctx context.Context, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	running := 0
	for _, a := range s.agents {
		if a.running() {
			running++
		}
	}
	for _, a := range s.agents {
		if !a.running() {
			continue
		}
		var h health
		var err error
		for {
			h, err = s.health(ctx, a)
			if err == nil && h.Ready && len(h.ImagesNeeded) > 0 && len(h.ImagesHeld) == len(h.ImagesNeeded) && h.Members >= running {
				break
			}
			if !a.running() {
				t.Fatalf("%s exited", a.name)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after %s: health %+v, err %v", a.name, timeout, h, err)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	waitUntil(t, ctx, time.Now().Add(2*electionLoadEpoch+electionHeartbeat))
}

func (s *site) health(ctx context.Context, a *daemon) (health, error) {
	var h health
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+a.addr.String()+":9120/healthz", nil)
	if err != nil {
		return h, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// deploy creates a machine for the guest and a required deployment of
// the Linux image to it; it returns the deployment.
func (s *site) deploy(t *testing.T, ctx context.Context, gu *guest) model.Deployment {
	t.Helper()
	m := model.Machine{ID: gu.g.Name, Name: gu.g.Name, MAC: gu.g.MAC.String(), GUID: gu.g.UUID}
	if err := s.admin.Do(ctx, "POST", "/api/v1/machines", m, &m); err != nil {
		t.Fatalf("create machine: %v", err)
	}
	d := model.Deployment{MachineID: m.ID, ImageID: s.imageID, Required: true, Priority: 10}
	if err := s.admin.Do(ctx, "POST", "/api/v1/deployments", d, &d); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	return d
}

// consumed reports whether Central holds a consumption of deployment dep
// by the machine (key "m:<id>").
func (s *site) consumed(t *testing.T, ctx context.Context, machineID, dep string) bool {
	t.Helper()
	var set api.DecisionSet
	if err := s.admin.Do(ctx, "GET", "/api/v1/decision-set", nil, &set); err != nil {
		t.Fatalf("decision set: %v", err)
	}
	for _, c := range set.Consumptions {
		if c.ClientKey == "m:"+machineID && c.DeploymentID == dep {
			return true
		}
	}
	return false
}

// decisions returns Central's pxe.decision events for a MAC, oldest first.
func (s *site) decisions(ctx context.Context, mac string) ([]decisionEvent, error) {
	var evs []model.Event
	if err := s.admin.Do(ctx, "GET", "/api/v1/events?type="+model.EventPXEDecision+"&limit=1000", nil, &evs); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	var out []decisionEvent
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		if e.MAC != mac {
			continue
		}
		de := decisionEvent{Event: e}
		_ = json.Unmarshal(e.Detail, &de.detail)
		out = append(out, de)
	}
	return out, nil
}

type decisionEvent struct {
	model.Event
	detail struct {
		Action string `json:"action"`
		Source string `json:"source"`
		Note   string `json:"note"`
	}
}

// waitDecision polls Central's events until one for mac made after since
// has the action, or the timeout passes.
func (s *site) waitDecision(ctx context.Context, mac, action string, since time.Time, timeout time.Duration) (decisionEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := s.decisions(ctx, mac)
		for _, e := range evs {
			if e.detail.Action == action && !e.Time.Before(since) {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return decisionEvent{}, fmt.Errorf("no %q decision for %s in Central's events within %s (last error %v)", action, mac, timeout, err)
		}
		select {
		case <-ctx.Done():
			return decisionEvent{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitUntil blocks until the wall clock passes when (a product time
// window, e.g. the required-repeat window, must elapse).
func waitUntil(t *testing.T, ctx context.Context, when time.Time) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(time.Until(when)):
	}
}
