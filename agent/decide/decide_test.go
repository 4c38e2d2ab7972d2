package decide

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/client"
	cdecide "github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/pxe"
)

type fakeCentral struct {
	d     cdecide.Decision
	err   error
	calls int
	peeks int
}

func (f *fakeCentral) Decide(_ context.Context, r api.DecideRequest) (cdecide.Decision, error) {
	f.calls++
	if r.Peek {
		f.peeks++
	}
	return f.d, f.err
}

type fakeElection struct {
	action   election.Action
	payload  []byte
	handoff  election.Action
	handoffs int
	rank     int
}

func (f *fakeElection) Decide(context.Context, election.ClientKey, string) election.Decision {
	return election.Decision{Action: f.action, Payload: f.payload, Rank: f.rank}
}

func (f *fakeElection) HandOff(context.Context, election.ClientKey, string, []byte) election.Decision {
	f.handoffs++
	return election.Decision{Action: f.handoff, Agent: 7}
}

type fakeImages map[string]bool

var images = map[string]model.Image{
	"x64":   {ID: "x64", Arch: model.ArchX64, Files: []model.ImageFile{{Name: "undionly.kpxe"}, {Name: "shim.efi"}, {Name: "bootx64.efi"}, {Name: "boot.iPXE"}}},
	"arm64": {ID: "arm64", Arch: model.ArchARM64, Files: []model.ImageFile{{Name: "grubaa64.efi"}}},
}

func (f fakeImages) Image(id string) (model.Image, bool) { img, ok := images[id]; return img, ok }
func (f fakeImages) Has(id string) bool                  { return f[id] }

func client7(kind pxe.MsgKind) *pxe.Client {
	return &pxe.Client{MAC: [6]byte{2, 0, 0, 0, 0, 7}, Arch: pxe.ArchEFIBC, HasArch: true, Class: pxe.ClassEFI64, Kind: kind}
}

func set() *api.DecisionSet {
	return &api.DecisionSet{
		Version: model.Version{Config: 1},
		Config: model.Config{
			Images:      []model.Image{images["x64"]},
			Deployments: []model.Deployment{{ID: "d1", UnknownComputers: true, ImageID: "x64", Required: true}},
		},
	}
}

func TestDecisions(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		central  *fakeCentral
		el       *fakeElection
		held     fakeImages
		setAge   time.Duration // -1: no cached set
		want     pxe.Decision
		wantErr  bool
		wantKind string
	}{
		{"central answers", &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}, &fakeElection{action: election.Serve}, fakeImages{"x64": true}, -1,
			pxe.Decision{Action: pxe.Boot, BootFile: "x64/bootx64.efi"}, false, "central"},
		{"another agent answers", &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}, &fakeElection{action: election.Defer}, fakeImages{"x64": true}, -1,
			pxe.Decision{Action: pxe.Ignore}, false, "deferred"},
		{"central down, fresh cache", &fakeCentral{err: down}, &fakeElection{action: election.Serve}, fakeImages{"x64": true}, time.Hour,
			pxe.Decision{Action: pxe.Boot, BootFile: "x64/bootx64.efi"}, false, "cache"},
		{"central down, stale cache", &fakeCentral{err: down}, &fakeElection{action: election.Serve}, fakeImages{"x64": true}, 48 * time.Hour,
			pxe.Decision{}, true, "stale"},
		{"central down, no cache", &fakeCentral{err: down}, &fakeElection{action: election.Serve}, fakeImages{"x64": true}, -1,
			pxe.Decision{}, true, "stale"},
		{"central refuses", &fakeCentral{err: &client.Error{Status: 401, Message: "bad token"}}, &fakeElection{action: election.Serve}, fakeImages{"x64": true}, time.Hour,
			pxe.Decision{}, true, "errors"},
		{"nothing to boot", &fakeCentral{d: cdecide.Decision{Boot: false, Reason: cdecide.ReasonNoDeployment}}, &fakeElection{action: election.Serve}, fakeImages{}, -1,
			pxe.Decision{Action: pxe.Ignore}, false, "noboot"},
		{"image elsewhere: handed off", &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}, &fakeElection{action: election.Serve, handoff: election.HandOff}, fakeImages{}, -1,
			pxe.Decision{Action: pxe.Ignore}, false, "handedoff"},
		{"handed to us", &fakeCentral{err: down}, &fakeElection{action: election.Serve, payload: mustJSON(cdecide.Decision{Boot: true, ImageID: "x64"})}, fakeImages{"x64": true}, -1,
			pxe.Decision{Action: pxe.Boot, BootFile: "x64/bootx64.efi"}, false, "handoff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var events []model.Event
			d := New(Config{Central: c.central, Election: c.el, Images: c.held, AgentID: "a-1", Subnet: netip.MustParseAddr("198.18.0.10"),
				MaxStale: 24 * time.Hour, Record: func(e model.Event) { events = append(events, e) }, Now: func() time.Time { return now }})
			if c.setAge >= 0 {
				d.SetDecisionSet(set(), now.Add(-c.setAge))
			}
			got, err := d.Decide(context.Background(), client7(pxe.MsgDiscover))
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("Decide = %+v, %v; want %+v (error %v)", got, err, c.want, c.wantErr)
			}
			k := d.Counters()
			counts := map[string]uint64{"central": k.FromCentral.Load(), "cache": k.FromCache.Load(), "handoff": k.FromHandoff.Load(),
				"deferred": k.Deferred.Load(), "handedoff": k.HandedOff.Load(), "noboot": k.NoBoot.Load(), "stale": k.Stale.Load(), "errors": k.Errors.Load()}
			if counts[c.wantKind] != 1 {
				t.Errorf("counters %v: want %s = 1", counts, c.wantKind)
			}
			if c.want.Action == pxe.Boot {
				if len(events) != 1 || events[0].Type != model.EventPXEDecision || events[0].AgentID != "a-1" || events[0].MAC != "02:00:00:00:00:07" {
					t.Errorf("events = %+v, want one pxe.decision", events)
				}
			}
		})
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestRequestAndRetriesGetTheSameAnswer(t *testing.T) {
	c := &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}
	el := &fakeElection{action: election.Serve}
	d := New(Config{Central: c, Election: el, Images: fakeImages{"x64": true}})
	first, err := d.Decide(context.Background(), client7(pxe.MsgDiscover))
	if err != nil {
		t.Fatal(err)
	}
	c.d = cdecide.Decision{Boot: true, ImageID: "arm64"} // Central changed its mind
	for _, kind := range []pxe.MsgKind{pxe.MsgRequest, pxe.MsgDiscover} {
		got, err := d.Decide(context.Background(), client7(kind))
		if err != nil || got != first {
			t.Fatalf("kind %d: %+v, %v; want %+v", kind, got, err, first)
		}
	}
	if c.calls != 1 {
		t.Errorf("Central asked %d times, want once", c.calls)
	}
}

func TestRequiredDeploymentRunsOnceWhileOffline(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	d := New(Config{Central: &fakeCentral{err: errors.New("down")}, Images: fakeImages{"x64": true}, Now: func() time.Time { return clock }})
	d.SetDecisionSet(set(), now)
	got, err := d.Decide(context.Background(), client7(pxe.MsgDiscover))
	if err != nil || got.Action != pxe.Boot {
		t.Fatalf("first boot: %+v, %v", got, err)
	}
	clock = now.Add(time.Hour) // past the answer cache and any repeat window
	got, err = d.Decide(context.Background(), client7(pxe.MsgDiscover))
	if err != nil || got.Action != pxe.Ignore {
		t.Fatalf("second boot of a consumed required deployment: %+v, %v; want ignore", got, err)
	}
}

func TestBootFile(t *testing.T) {
	cases := []struct {
		img   string
		class pxe.Class
		ipxe  bool
		want  string
	}{
		{"x64", pxe.ClassEFI64, false, "bootx64.efi"},
		{"x64", pxe.ClassBIOS, false, "undionly.kpxe"},
		{"x64", pxe.ClassEFI64, true, "boot.iPXE"},
		{"x64", pxe.ClassBIOS, true, "boot.iPXE"},
		{"arm64", pxe.ClassARM64, false, "grubaa64.efi"},
		{"arm64", pxe.ClassARM64, true, "grubaa64.efi"}, // no script: the class rule
		{"arm64", pxe.ClassBIOS, false, ""},
		{"x64", pxe.ClassHTTPEFI64, false, ""},
	}
	for _, c := range cases {
		if got := BootFile(images[c.img], c.class, c.ipxe); got != c.want {
			t.Errorf("BootFile(%s, %v, ipxe=%v) = %q, want %q", c.img, c.class, c.ipxe, got, c.want)
		}
	}
}

func TestFailoverAndHandoffAreElectionEvents(t *testing.T) {
	for _, c := range []struct {
		name   string
		el     *fakeElection
		held   fakeImages
		action string
	}{
		{"failover", &fakeElection{action: election.Serve, rank: 1}, fakeImages{"x64": true}, "failover"},
		{"handoff", &fakeElection{action: election.Serve, handoff: election.HandOff}, fakeImages{}, "handoff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var evs []model.Event
			d := New(Config{Central: &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}, Election: c.el, Images: c.held,
				Record: func(e model.Event) { evs = append(evs, e) }})
			if _, err := d.Decide(context.Background(), client7(pxe.MsgDiscover)); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range evs {
				var det struct{ Action string }
				json.Unmarshal(e.Detail, &det)
				if e.Type == model.EventElection && det.Action == c.action {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("events %+v: want one election event %q", evs, c.action)
			}
		})
	}
}

// The firmware's PXE stack and the iPXE it then runs share a MAC but must
// get different files, or iPXE would chainload itself forever.
func TestIPXEStageGetsTheScript(t *testing.T) {
	c := &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "x64"}}
	d := New(Config{Central: c, Election: &fakeElection{action: election.Serve}, Images: fakeImages{"x64": true}})
	fw, err := d.Decide(context.Background(), client7(pxe.MsgDiscover))
	if err != nil || fw.BootFile != "x64/bootx64.efi" {
		t.Fatalf("firmware stage: %+v, %v", fw, err)
	}
	ipxe := client7(pxe.MsgDiscover)
	ipxe.IPXE = true
	got, err := d.Decide(context.Background(), ipxe)
	if err != nil || got.BootFile != "x64/boot.iPXE" {
		t.Fatalf("iPXE stage: %+v, %v; want the image's script", got, err)
	}
	// Each stage's retries keep their own answer.
	if again, _ := d.Decide(context.Background(), client7(pxe.MsgRequest)); again != fw {
		t.Fatalf("firmware retry: %+v, want %+v", again, fw)
	}
}

// A new decision set (an administrator cleared a required deployment, say)
// is not hidden behind an answer remembered from the old one.
func TestNewDecisionSetForgetsRememberedAnswers(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &fakeCentral{d: cdecide.Decision{Boot: false, Reason: cdecide.ReasonNoDeployment}}
	d := New(Config{Central: c, Election: &fakeElection{action: election.Serve}, Images: fakeImages{"x64": true}, Now: func() time.Time { return now }})
	d.SetDecisionSet(set(), now)
	if got, _ := d.Decide(context.Background(), client7(pxe.MsgDiscover)); got.Action != pxe.Ignore {
		t.Fatalf("before: %+v", got)
	}
	c.d = cdecide.Decision{Boot: true, ImageID: "x64"}
	same := set()
	d.SetDecisionSet(same, now) // same version: the remembered answer stands
	if got, _ := d.Decide(context.Background(), client7(pxe.MsgDiscover)); got.Action != pxe.Ignore {
		t.Fatalf("same set: %+v, want the remembered ignore", got)
	}
	next := set()
	next.Version.Config++
	d.SetDecisionSet(next, now)
	if got, _ := d.Decide(context.Background(), client7(pxe.MsgDiscover)); got.Action != pxe.Boot {
		t.Fatalf("after a new set: %+v, want boot", got)
	}
}
