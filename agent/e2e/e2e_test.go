package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/internal/netlab"
)

var exe string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "peerboot-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exe = filepath.Join(dir, "peerboot")
	out, err := exec.Command("go", "build", "-o", exe, "github.com/peerboot/peerboot/cmd/peerboot").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needLab(t *testing.T) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Fatalf("end-to-end tests need root: %v", err)
	}
}

func startSite(t *testing.T, ctx context.Context, subnet string, o lab.Options) *lab.Site {
	t.Helper()
	o.Exe = exe
	if subnet != "" {
		o.Subnet = subnet
	}
	o.Dir = t.TempDir()
	s, err := lab.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append([]*lab.Proc{s.Central}, s.Agents...) {
				b, _ := os.ReadFile(p.Log)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 30 {
					lines = lines[len(lines)-30:]
				}
				t.Logf("--- %s log tail:\n%s", p.Name, strings.Join(lines, "\n"))
			}
		}
		s.Close()
	})
	return s
}

// metric reads one sample from agent i's /metrics.
func metric(t *testing.T, s *lab.Site, i int, sample string) float64 {
	t.Helper()
	var v float64 = -1
	body, err := s.Metrics(context.Background(), i)
	for _, line := range strings.Split(body, "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && name == sample {
			v, _ = strconv.ParseFloat(val, 64)
		}
	}
	if err != nil {
		t.Fatalf("metrics of agent %d: %v", i, err)
	}
	if v < 0 {
		t.Fatalf("agent %d has no sample %s", i, sample)
	}
	return v
}

func bootAll(t *testing.T, ctx context.Context, s *lab.Site, from, n int) map[int]int {
	t.Helper()
	served := map[int]int{}
	type out struct {
		i, agent int
		err      error
	}
	ch := make(chan out, n)
	for i := from; i < from+n; i++ {
		go func(i int) {
			c := s.NewClient(i)
			res, err := s.Boot(ctx, c)
			if err == nil && res.Offers != 1 {
				err = fmt.Errorf("%d offers (from %v), want exactly one", res.Offers, res.Servers)
			}
			if err == nil {
				want := fileSize(s, res.BootFile)
				if res.Bytes != want || want <= 0 {
					err = fmt.Errorf("downloaded %d bytes of %s, want %d", res.Bytes, res.BootFile, want)
				}
			}
			ch <- out{i, s.AgentIndex(res.Server), err}
		}(i)
	}
	for k := 0; k < n; k++ {
		o := <-ch
		if o.err != nil {
			t.Errorf("client %d: %v", o.i, o.err)
			continue
		}
		served[o.i] = o.agent
	}
	return served
}

func fileSize(s *lab.Site, bootFile string) int64 {
	img, name, _ := strings.Cut(bootFile, "/")
	for _, im := range s.Images {
		if im.ID == img {
			for _, f := range im.Files {
				if f.Name == name {
					return f.Size
				}
			}
		}
	}
	return -1
}

func TestClientsBootFromTheElectedAgent(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startSite(t, ctx, "198.18.81.0/24", lab.Options{ImageBytes: 1 << 20})
	served := bootAll(t, ctx, s, 0, 15)
	if len(served) != 15 {
		t.Fatalf("%d of 15 clients booted", len(served))
	}
	per := map[int]int{}
	for _, a := range served {
		per[a]++
	}
	if len(per) < 2 {
		t.Errorf("one agent served everything: %v", per)
	}
	// Retries of a client go to the same agent.
	again := bootAll(t, ctx, s, 0, 5)
	for i, a := range again {
		if served[i] != a {
			t.Errorf("client %d: first served by agent %d, retry by agent %d", i, served[i], a)
		}
	}
	// Every boot was decided by Central and reported to it.
	total := 0.0
	for i := range s.Agents {
		total += metric(t, s, i, `peerboot_agent_decisions_total{kind="central"}`)
	}
	if total < 15 {
		t.Errorf("Central decided %v boots, want at least 15", total)
	}
	waitEvents(t, ctx, s)
	evs, err := s.Events(ctx, model.EventPXEBoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 20 {
		t.Errorf("Central has %d pxe.boot events, want 20 (15 boots + 5 repeats)", len(evs))
	}
}

// waitEvents waits until no running agent has events queued.
func waitEvents(t *testing.T, ctx context.Context, s *lab.Site) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i, a := range s.Agents {
		if !a.Running() {
			continue
		}
		for {
			h, err := s.Health(ctx, i)
			if err == nil && h.EventsQueued == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %d still has events queued (%+v, %v)", i, h, err)
			}
			time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
		}
	}
}

func TestCentralOutageCachedDecisionsAndEventsExactlyOnce(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startSite(t, ctx, "198.18.82.0/24", lab.Options{ImageBytes: 1 << 20})
	if got := bootAll(t, ctx, s, 0, 3); len(got) != 3 {
		t.Fatal("clients did not boot before the outage")
	}
	s.StopCentral()
	served := bootAll(t, ctx, s, 100, 9)
	if len(served) != 9 {
		t.Fatalf("%d of 9 clients booted while Central was down", len(served))
	}
	cached := 0.0
	for i := range s.Agents {
		cached += metric(t, s, i, `peerboot_agent_decisions_total{kind="cache"}`)
		if q := metric(t, s, i, "peerboot_events_pending"); q < 0 {
			t.Fatalf("agent %d has no pending-events metric", i)
		}
	}
	if cached < 9 {
		t.Errorf("%v decisions came from the cached set, want at least 9", cached)
	}
	// One agent restarts during the outage: its queued events survive.
	s.StopAgent(0, syscall.SIGTERM)
	if err := s.StartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCentral(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, ctx, s)
	evs, err := s.Events(ctx, model.EventPXEDecision)
	if err != nil {
		t.Fatal(err)
	}
	perMAC := map[string]int{}
	for _, e := range evs {
		var d struct{ Action, Source string }
		json.Unmarshal(e.Detail, &d)
		if d.Action == "boot" && d.Source == "cache" {
			perMAC[e.MAC]++
		}
	}
	for i := 100; i < 109; i++ {
		mac := s.NewClient(i).MAC.String()
		if perMAC[mac] != 1 {
			t.Errorf("client %s: %d cached-decision events at Central, want exactly 1", mac, perMAC[mac])
		}
	}
}

func TestKilledElectedAgentRetryServedByAnother(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startSite(t, ctx, "198.18.83.0/24", lab.Options{ImageBytes: 1 << 20})
	c := s.NewClient(7)
	res, err := s.Boot(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	winner := s.AgentIndex(res.Server)
	if winner < 0 {
		t.Fatalf("served by unknown server %v", res.Server)
	}
	s.StopAgent(winner, syscall.SIGKILL)
	res2, err := s.Boot(ctx, c)
	if err != nil {
		t.Fatalf("retry after killing %s: %v", s.Agents[winner].Name, err)
	}
	if got := s.AgentIndex(res2.Server); got == winner || got < 0 {
		t.Fatalf("retry served by %v, want another agent than %s", res2.Server, s.Agents[winner].Name)
	}
	if res2.Bytes != fileSize(s, res2.BootFile) {
		t.Fatalf("retry downloaded %d bytes", res2.Bytes)
	}
	t.Logf("killed %s; retry served by %v after %d DISCOVERs (offer after %v)", s.Agents[winner].Name, res2.Server, res2.Discovers, res2.OfferAfter)
	// The survivor reports the failover to Central: when the offer waited
	// out the election wait (200ms), the dead agent still ranked first.
	if res2.OfferAfter < 150*time.Millisecond {
		t.Logf("the killed agent had already left the view; no failover to report")
		return
	}
	waitEvents(t, ctx, s)
	evs, err := s.Events(ctx, model.EventElection)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		if e.MAC == c.MAC.String() && strings.Contains(string(e.Detail), `"failover"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no failover election event for %s at Central (%d election events)", c.MAC, len(evs))
	}
}

func TestBadConfigurationGivesOneClearLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("interface = lo\ncentral-url = http://127.0.0.1:1\nwieght = 5\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"unknown flag", []string{"agent", "--central-url=http://127.0.0.1:1", "--interface=lo", "--no-such-flag"}, "flag provided but not defined: -no-such-flag", 2},
		{"bad config file", []string{"agent", "--config", bad}, `line 3: unknown setting "wieght"`, 1},
		{"missing config file", []string{"agent", "--config", filepath.Join(dir, "none.conf")}, "no such file", 1},
		{"weight out of range", []string{"agent", "--central-url=http://127.0.0.1:1", "--interface=lo", "--weight=120"}, "setting weight (--weight, PEERBOOT_WEIGHT): 120 is out of range 0-99", 1},
		{"unreachable central", []string{"agent", "--central-url=http://127.0.0.1:1", "--interface=lo", "--enrollment-key=k", "--cache-dir", filepath.Join(dir, "c")}, "cannot reach Central at http://127.0.0.1:1 to enroll: connection refused", 1},
		{"demo flag", []string{"demo", "--clients=zero"}, "invalid value \"zero\" for flag -clients", 2},
		{"responder unknown flag", []string{"responder", "--moed=forward"}, "flag provided but not defined: -moed", 2},
		{"responder missing token", []string{"responder", "--interface=lo", "--central-url=http://127.0.0.1:1"}, "setting central-token (--central-token, PEERBOOT_CENTRAL_TOKEN) is required", 2},
		{"responder bad mode", []string{"responder", "--interface=lo", "--central-url=http://127.0.0.1:1", "--central-token=t", "--mode=relay"}, `setting mode (--mode, PEERBOOT_MODE): "relay" is neither referral nor forward`, 2},
		{"responder unreachable central", []string{"responder", "--interface=lo", "--central-url=http://127.0.0.1:1", "--central-token=t"}, "cannot reach Central at http://127.0.0.1:1: connection refused", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(exe, c.args...)
			cmd.Env = append(os.Environ(), "PEERBOOT_CONFIG=")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.Stdout = io.Discard
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			out := strings.TrimSpace(stderr.String())
			if code != c.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, c.code, out)
			}
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, c.want) {
				t.Errorf("stderr = %q, want one line containing %q", out, c.want)
			}
			if strings.Contains(out, "goroutine") || strings.Contains(out, "panic") {
				t.Errorf("stack trace: %q", out)
			}
		})
	}
}

func TestDemoJSON(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "demo", "--clients", "10", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	var sum struct {
		Clients, Booted, Failed int
		PerAgent                map[string]int `json:"per_agent"`
		MBPerS                  float64        `json:"mb_per_s"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	if sum.Clients != 10 || sum.Booted != 10 || sum.Failed != 0 {
		t.Fatalf("summary %+v: want 10 of 10 booted", sum)
	}
	total := 0
	for _, n := range sum.PerAgent {
		total += n
	}
	if total != sum.Booted || len(sum.PerAgent) != 3 {
		t.Errorf("per-agent shares %v sum to %d over %d agents, want %d over 3", sum.PerAgent, total, len(sum.PerAgent), sum.Booted)
	}
	if sum.MBPerS <= 0 {
		t.Errorf("throughput %v MB/s", sum.MBPerS)
	}
	// Nothing is left behind.
	ns, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(ns), fmt.Sprintf("pb%d-", cmd.Process.Pid)) {
		t.Errorf("demo left namespaces behind: %s", ns)
	}
}
