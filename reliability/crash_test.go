package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/internal/netlab"
)

// metricValue reads one sample (name with labels, as printed) from a
// Prometheus text body; -1 when absent.
func metricValue(body, sample string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if n, v, ok := strings.Cut(line, " "); ok && n == sample {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (%s)", what, limit, state)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// verifyCache checks that every file in the agent's blob cache hashes to
// its name (partial downloads may sit beside them as .part files) and
// returns the verified names.
func verifyCache(t *testing.T, blobs string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".part") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Name() {
			t.Errorf("cache file %s hashes to %s: an unverified file is in the cache", e.Name(), got)
			continue
		}
		ok[e.Name()] = true
	}
	return ok
}

// TestAgentKilledMidDownloadAndMidQueueing kills a real agent (full mode,
// Central on SQLite) with SIGKILL twice during an image download, then
// during event queueing while Central is down, and restarts Central on its
// database file: the cache only ever holds files that hash to their names,
// and every boot's events reach Central exactly once.
func TestAgentKilledMidDownloadAndMidQueueing(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Fatalf("needs root (network namespaces): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := lab.Start(ctx, lab.Options{Exe: peerboot(t), Subnet: "198.18.122.0/24", Agents: 1, ImageBytes: 256 << 10, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if t.Failed() {
			for _, p := range []*lab.Proc{s.Central, s.Agents[0]} {
				t.Logf("--- %s log tail:\n%s", p.Name, tailFile(p.Log, 25))
			}
		}
	}()
	blobs := filepath.Join(s.Dir, "agent1", "blobs")

	// 1. SIGKILL twice during a download. Central's link is slowed so the
	// download can be caught in the middle.
	if out, err := exec.Command("ip", "netns", "exec", s.Central.Host.NS, "tc", "qdisc", "add", "dev", "eth0", "root",
		"tbf", "rate", "100mbit", "burst", "128kb", "latency", "200ms").CombinedOutput(); err != nil {
		t.Fatalf("tc: %v: %s", err, out)
	}
	big := lab.RandomBytes(24<<20, 7, 7)
	sum := sha256.Sum256(big)
	bigSum := hex.EncodeToString(sum[:])
	if _, err := s.AddImage(ctx, "big-x64", model.ArchX64, 5, map[string][]byte{"bigx64.efi": big}); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(blobs, bigSum+".part")
	for round, at := range []int64{int64(len(big)) / 5, int64(len(big)) * 3 / 5} {
		waitFor(t, 90*time.Second, fmt.Sprintf("download %d reaching %d bytes", round+1, at), func() (bool, string) {
			st, err := os.Stat(part)
			if _, e := os.Stat(filepath.Join(blobs, bigSum)); e == nil {
				t.Fatal("the download finished before the agent could be killed")
			}
			if err != nil {
				return false, err.Error()
			}
			return st.Size() >= at, fmt.Sprintf("%d bytes", st.Size())
		})
		s.StopAgent(0, syscall.SIGKILL)
		if _, err := os.Stat(filepath.Join(blobs, bigSum)); err == nil {
			t.Fatalf("kill %d: the partial download is in the cache under its final name", round+1)
		}
		verifyCache(t, blobs)
		if err := s.StartAgent(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitReady(ctx, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	held := verifyCache(t, blobs)
	if !held[bigSum] {
		t.Fatal("after two kills and restarts the image is not in the cache")
	}
	if _, err := os.Stat(part); err == nil {
		t.Error("a .part file is left after the download completed")
	}
	exec.Command("ip", "netns", "exec", s.Central.Host.NS, "tc", "qdisc", "del", "dev", "eth0", "root").Run()

	// 2. Central goes down; clients boot from the cached decision set and
	// their events queue on disk; the agent is killed with events queued,
	// restarted, and killed again in the middle of a boot.
	s.StopCentral()
	health := func() (bool, string) {
		h, err := s.Health(ctx, 0)
		return err == nil && h.Ready, fmt.Sprintf("%+v %v", h, err)
	}
	booted := map[string]bool{}
	boot := func(i int) error {
		c := s.NewClient(i)
		c.Arch = 0 // BIOS: the small demo file
		res, err := s.Boot(ctx, c)
		if err != nil {
			return err
		}
		if res.Bytes <= 0 {
			return fmt.Errorf("client %d downloaded nothing", i)
		}
		booted[c.MAC.String()] = true
		return nil
	}
	for i := 1; i <= 6; i++ {
		if err := boot(i); err != nil {
			t.Fatalf("client %d with Central down: %v", i, err)
		}
	}
	waitFor(t, 30*time.Second, "events of 6 boots queued", func() (bool, string) {
		m, _ := s.Metrics(ctx, 0)
		v := metricValue(m, "peerboot_events_pending")
		return v >= 18, fmt.Sprintf("pending %v", v) // a decision, a transfer and a boot each
	})
	s.StopAgent(0, syscall.SIGKILL)
	if err := s.StartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "agent ready again with Central down", health)
	for i := 7; i <= 10; i++ {
		if err := boot(i); err != nil {
			t.Fatalf("client %d with Central down after the restart: %v", i, err)
		}
	}
	// Kill it while the next clients boot (events being appended).
	// A client that got an OFFER had its decision event on disk first
	// (the agent appends, fsync'd, before it answers).
	var wg sync.WaitGroup
	var offeredMu sync.Mutex
	offered := map[string]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 11; i <= 14; i++ {
			c := s.NewClient(i)
			c.Arch, c.Tries = 0, 1
			res, _ := s.Boot(ctx, c) // some of these are cut off by the kill
			if res.Offers > 0 {
				offeredMu.Lock()
				offered[c.MAC.String()] = true
				offeredMu.Unlock()
			}
		}
	}()
	waitFor(t, 30*time.Second, "a boot in progress", func() (bool, string) {
		m, _ := s.Metrics(ctx, 0)
		v := metricValue(m, `peerboot_agent_decisions_total{kind="cache"}`)
		return v >= 1, fmt.Sprintf("cache decisions %v", v)
	})
	s.StopAgent(0, syscall.SIGKILL)
	wg.Wait()

	// 3. Central back on its database file, the agent restarted: the queue
	// drains, once.
	if err := s.StartCentral(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "agent ready with Central back", health)
	waitFor(t, 90*time.Second, "event queue drained", func() (bool, string) {
		h, err := s.Health(ctx, 0)
		return err == nil && h.EventsQueued == 0, fmt.Sprintf("%+v %v", h, err)
	})
	evs, err := s.Events(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	decisions := map[string]int{}
	for _, e := range evs {
		ids[e.AgentID+"/"+e.ID]++
		if e.Type == model.EventPXEDecision && strings.Contains(string(e.Detail), `"action":"boot"`) {
			decisions[e.MAC]++
		}
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for mac := range booted {
		if decisions[mac] != 1 {
			t.Errorf("client %s booted; Central holds %d boot decisions for it, want exactly 1", mac, decisions[mac])
		}
	}
	for mac := range offered {
		if decisions[mac] != 1 {
			t.Errorf("client %s was offered a boot around the kill; Central holds %d boot decisions for it, want exactly 1", mac, decisions[mac])
		}
	}
	for mac, n := range decisions {
		if n > 1 {
			t.Errorf("client %s has %d boot decisions", mac, n)
		}
	}
	// Every transfer that completed has its transfer and pxe.boot events:
	// at least one per booted client (the cut-off clients may add some).
	transfers, boots := 0, 0
	for _, e := range evs {
		switch e.Type {
		case model.EventTransfer:
			if strings.Contains(string(e.Detail), `"outcome":"complete"`) {
				transfers++
			}
		case model.EventPXEBoot:
			boots++
		}
	}
	if transfers < len(booted) || boots < len(booted) {
		t.Errorf("%d clients booted, Central holds %d complete transfers and %d pxe.boot events", len(booted), transfers, boots)
	}
	verifyCache(t, blobs)
	t.Logf("cache verified after 2 kills mid-download; %d clients booted with Central down across 2 more kills (%d more offered around the last kill); Central holds %d events, each once (%d boot decisions, %d complete transfers, %d pxe.boot)",
		len(booted), len(offered), len(evs), len(decisions), transfers, boots)
}
