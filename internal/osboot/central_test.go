//go:build osboot

package osboot_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/internal/osboot"
)

// requiredRepeatWindow: a repeat DISCOVER this soon after a required
// deployment was handed out is the same boot (the firmware, then iPXE).
const requiredRepeatWindow = 45 * time.Second

// agentAnswerMemory is how long an agent keeps giving a client the answer
// it last gave it (so that retries and the 4011 request get the same
// answer), plus a margin.
const agentAnswerMemory = 35 * time.Second

// TestCentralSiteBootsLinux is the whole product under real firmware: a
// plain DHCP server, Central on SQLite with a required deployment of the
// Linux image for each guest, three agents electing among themselves.
// OVMF and SeaBIOS+iPXE boot Linux to the serial marker; Central records
// the boots and the deployments are consumed, so a second boot gets no
// boot image; after an administrator clears them through the API, the
// guests boot again, while the agent that served the BIOS guest before
// has been killed, so another agent must serve it.
func TestCentralSiteBootsLinux(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	l := newOSLab(t, ctx, "198.18.49.0/24")
	guests := firmwareGuests(49)
	deps := map[*guest]string{}
	s := site{l.startSite(t, ctx, lab.Options{Agents: 3, ReadyTimeout: 90 * time.Second,
		CentralArgs: []string{"--required-repeat-window", requiredRepeatWindow.String()},
		AgentArgs:   []string{"--progress=false", "--log-level", "debug"},
		Provision:   l.provisionLinux(guests, deps)})}
	// A new agent answers clients from its second load epoch, and a BIOS
	// iPXE ROM gives up DHCP after a few seconds, so the site must be
	// answering before the guests power on.
	waitUntil(t, ctx, time.Now().Add(2*lab.ElectionLoadEpoch+lab.ElectionHeartbeat))
	agentByID := map[string]int{}
	for i := range s.Agents {
		h, err := s.Health(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		agentByID[h.Agent] = i
	}

	// 1. First boot: both guests reach Linux; Central records the boot
	// and consumes the required deployment.
	start := time.Now()
	l.bootAll(t, ctx, guests...)
	servedBy := map[*guest]int{}
	for _, gu := range guests {
		requireBooted(t, gu)
		ev, err := s.waitDecision(ctx, gu.g.MAC.String(), "boot", start, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: Central recorded no boot: %v", gu.g.Name, err)
		}
		if ev.DeploymentID != deps[gu] || !ev.Required || ev.ImageID != linuxImageID {
			t.Errorf("%s: boot event %+v, want required deployment %s of %s", gu.g.Name, ev.Event, deps[gu], linuxImageID)
		}
		by, ok := agentByID[ev.AgentID]
		if !ok {
			t.Fatalf("%s: boot event from unknown agent %q", gu.g.Name, ev.AgentID)
		}
		servedBy[gu] = by
		t.Logf("%s was served by %s (%s)", gu.g.Name, s.Agents[by].Name, ev.AgentID)
		if !s.consumed(t, ctx, gu.g.Name, deps[gu]) {
			t.Errorf("%s: Central holds no consumption of deployment %s", gu.g.Name, deps[gu])
		}
	}

	// 2. Second boot, once the repeat window of the first has passed: the
	// deployment is consumed, so the elected agent decides "none" and the
	// guest gets no boot image.
	waitUntil(t, ctx, time.Now().Add(requiredRepeatWindow))
	start = time.Now()
	noBoot := make(chan error, len(guests))
	lastNone := make(chan time.Time, len(guests))
	for _, gu := range guests {
		gu.limit = 2 * time.Minute
		if err := l.StartSerialGuest(ctx, gu.g); err != nil {
			t.Fatal(err)
		}
	}
	for _, gu := range guests {
		go func() {
			defer gu.g.Stop()
			ev, err := s.waitDecision(ctx, gu.g.MAC.String(), "none", start, gu.limit)
			if err != nil {
				err = fmt.Errorf("%s, second power-on: %w", gu.g.Name, err)
			}
			lastNone <- ev.Time
			noBoot <- err
		}()
	}
	for range guests {
		if err := <-noBoot; err != nil {
			t.Error(err)
		}
	}
	for _, gu := range guests {
		if b, _ := os.ReadFile(gu.g.SerialLog()); strings.Contains(string(b), osboot.Marker(gu.g.MAC.String())) {
			t.Errorf("%s booted Linux again although its required deployment was consumed", gu.g.Name)
		}
		evs, err := s.decisions(ctx, gu.g.MAC.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if !e.Time.Before(start) && e.detail.Action == "boot" {
				t.Errorf("%s: an agent decided boot on the second power-on: %+v", gu.g.Name, e.Event)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. The administrator clears the required deployments; the agent that
	// served the BIOS guest is killed before its DISCOVER; both boot again.
	for _, gu := range guests {
		var res struct {
			Cleared int `json:"cleared"`
		}
		if err := s.Admin().Do(ctx, "POST", "/api/v1/machines/"+gu.g.Name+"/clear-required", nil, &res); err != nil {
			t.Fatalf("clear %s: %v", gu.g.Name, err)
		}
		if res.Cleared != 1 || s.consumed(t, ctx, gu.g.Name, deps[gu]) {
			t.Fatalf("clear %s: cleared %d, still consumed %v", gu.g.Name, res.Cleared, s.consumed(t, ctx, gu.g.Name, deps[gu]))
		}
	}
	// An agent answers a client's retries the same way for a while; the
	// "none" answers of the second power-on must have expired.
	var latest time.Time
	for range guests {
		if at := <-lastNone; at.After(latest) {
			latest = at
		}
	}
	waitUntil(t, ctx, latest.Add(agentAnswerMemory))
	bios := guests[1]
	killed := servedBy[bios]
	s.StopAgent(killed, syscall.SIGKILL) // an agent that dies, not one that drains
	t.Logf("killed %s, which served %s", s.Agents[killed].Name, bios.g.Name)
	start = time.Now()
	for _, gu := range guests {
		gu.limit = newGuest(gu.g.Firmware, "", gu.g.MAC.String(), "").limit
	}
	l.bootAll(t, ctx, guests...)
	for _, gu := range guests {
		requireBooted(t, gu)
		ev, err := s.waitDecision(ctx, gu.g.MAC.String(), "boot", start, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: Central recorded no boot after the clear: %v", gu.g.Name, err)
		}
		by, ok := agentByID[ev.AgentID]
		if !ok || by == killed {
			t.Errorf("%s: served after the clear by %v, want a live agent other than %s", gu.g.Name, ev.AgentID, s.Agents[killed].Name)
		} else {
			t.Logf("%s was served by %s after the clear", gu.g.Name, s.Agents[by].Name)
		}
	}
	l.capture.Stop()
	l.saveCapture(t, "peerboot-central-linux-boots.pcap")
}
