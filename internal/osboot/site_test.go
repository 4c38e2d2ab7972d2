//go:build osboot

package osboot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/model"
)

// linuxImageID names the image that holds the Linux boot artefacts.
const linuxImageID = "linux-x64"

// startSite builds a peerboot site (agent/lab) in the lab's subnet, or
// with Central behind a router when o.CoreSubnet is set: Central (SQLite)
// at .2, agents at .11, .12, ... The tails of its logs are printed when the
// test fails; t.Cleanup closes it.
func (l *osLab) startSite(t *testing.T, ctx context.Context, o lab.Options) *lab.Site {
	t.Helper()
	o.Exe, o.Net, o.Dir = l.bin, l.Net, filepath.Join(l.dir, "site")
	if err := os.Mkdir(o.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var s *lab.Site
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(o.Dir, "*.log"))
			for _, p := range logs {
				b, _ := os.ReadFile(p)
				t.Logf("--- %s (tail):\n%s", filepath.Base(p), tail(b, 30))
			}
		}
		if s != nil {
			s.Close()
		}
	})
	var err error
	if s, err = lab.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	if s.AdminToken == "" || s.EnrollKey == "" {
		t.Fatalf("central did not print its credentials (token %v, key %v)", s.AdminToken != "", s.EnrollKey != "")
	}
	return s
}

// site is a peerboot site whose Central decides for the guests.
type site struct{ *lab.Site }

// provisionLinux returns a lab.Options.Provision that registers the Linux
// image from the artefacts and gives each guest a machine with a required
// deployment of it; deps receives each guest's deployment ID.
func (l *osLab) provisionLinux(guests []*guest, deps map[*guest]string) func(context.Context, *lab.Site) error {
	return func(ctx context.Context, ls *lab.Site) error {
		var img model.Image
		if err := ls.Admin().Do(ctx, "POST", "/api/v1/images/register", api.RegisterRequest{
			ID: linuxImageID, Arch: model.ArchX64, Description: "iPXE + Debian kernel + busybox initramfs", Dir: l.art.Root}, &img); err != nil {
			return fmt.Errorf("register image: %w", err)
		}
		for _, gu := range guests {
			m := model.Machine{ID: gu.g.Name, Name: gu.g.Name, MAC: gu.g.MAC.String(), GUID: gu.g.UUID}
			if err := ls.Admin().Do(ctx, "POST", "/api/v1/machines", m, &m); err != nil {
				return fmt.Errorf("create machine: %w", err)
			}
			d := model.Deployment{MachineID: m.ID, ImageID: linuxImageID, Required: true, Priority: 10}
			if err := ls.Admin().Do(ctx, "POST", "/api/v1/deployments", d, &d); err != nil {
				return fmt.Errorf("create deployment: %w", err)
			}
			deps[gu] = d.ID
		}
		return nil
	}
}

// consumed reports whether Central holds a consumption of deployment dep
// by the machine (key "m:<id>").
func (s site) consumed(t *testing.T, ctx context.Context, machineID, dep string) bool {
	t.Helper()
	var set api.DecisionSet
	if err := s.Admin().Do(ctx, "GET", "/api/v1/decision-set", nil, &set); err != nil {
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
func (s site) decisions(ctx context.Context, mac string) ([]decisionEvent, error) {
	evs, err := s.Events(ctx, model.EventPXEDecision)
	if err != nil {
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
func (s site) waitDecision(ctx context.Context, mac, action string, since time.Time, timeout time.Duration) (decisionEvent, error) {
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
