package responder

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	cdecide "github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/pxe"
)

type fakeCentral struct {
	agents  []model.Agent
	d       cdecide.Decision
	down    bool
	decides int
}

func (f *fakeCentral) Decide(context.Context, api.DecideRequest) (cdecide.Decision, error) {
	f.decides++
	if f.down {
		return cdecide.Decision{}, errors.New("down")
	}
	return f.d, nil
}

func (f *fakeCentral) Do(_ context.Context, _, path string, _, out any) error {
	if f.down {
		return errors.New("down")
	}
	var v any = f.agents
	if len(path) > 15 && path[:15] == "/api/v1/images/" {
		v = model.Image{ID: path[15:], Arch: model.ArchX64, Files: []model.ImageFile{{Name: "undionly.kpxe"}, {Name: "bootx64.efi"}}}
	}
	b, _ := json.Marshal(v)
	return json.Unmarshal(b, out)
}

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func agent(id, addr string, weight int, images ...string) model.Agent {
	return model.Agent{ID: id, Subnets: []string{"198.18.40.0/24"}, Addresses: []string{addr}, Weight: weight, Images: images, LastSeen: now}
}

func discover(mac byte, relayed bool) *pxe.Client {
	c := &pxe.Client{MAC: [6]byte{2, 0, 0, 0, 1, mac}, Arch: pxe.ArchEFIBC, HasArch: true, Class: pxe.ClassEFI64, Kind: pxe.MsgDiscover}
	if relayed {
		c.GIAddr = netip.MustParseAddr("198.18.40.1")
	}
	return c
}

func TestReferrerRefersToALiveAgentOfTheRelaySubnet(t *testing.T) {
	fc := &fakeCentral{
		agents: []model.Agent{agent("a1", "198.18.40.11", 50, "img"), agent("a2", "198.18.40.12", 50, "img"),
			agent("zero", "198.18.40.13", 0, "img"), {ID: "old", Subnets: []string{"198.18.40.0/24"}, Addresses: []string{"198.18.40.14"}, Weight: 50, LastSeen: now.Add(-time.Hour)}},
		d: cdecide.Decision{Boot: true, ImageID: "img"},
	}
	r := &Referrer{Central: fc, Now: func() time.Time { return now }}
	seen := map[netip.Addr]int{}
	for i := 0; i < 200; i++ {
		d, err := r.Decide(context.Background(), discover(byte(i), true))
		if err != nil || d.Action != pxe.Boot || d.BootFile != "img/bootx64.efi" {
			t.Fatalf("client %d: %+v, %v", i, d, err)
		}
		seen[d.Server]++
	}
	if len(seen) != 2 || seen[netip.MustParseAddr("198.18.40.11")] < 60 || seen[netip.MustParseAddr("198.18.40.12")] < 60 {
		t.Errorf("referrals %v: want both live weighted agents, roughly half each, never weight 0 or stale", seen)
	}
	// Retries and the 4011 request get the same referral without asking again.
	first, _ := r.Decide(context.Background(), discover(7, true))
	calls := fc.decides
	req := discover(7, false)
	req.Kind = pxe.MsgRequest
	again, err := r.Decide(context.Background(), req)
	if err != nil || again != first || fc.decides != calls {
		t.Errorf("4011 request: %+v, %v (Central asked %d more times); want %+v", again, err, fc.decides-calls, first)
	}
}

func TestReferrerIgnores(t *testing.T) {
	cases := []struct {
		name   string
		fc     *fakeCentral
		client *pxe.Client
	}{
		{"not relayed", &fakeCentral{agents: []model.Agent{agent("a1", "198.18.40.11", 50)}, d: cdecide.Decision{Boot: true, ImageID: "img"}}, discover(1, false)},
		{"no agent in the subnet", &fakeCentral{d: cdecide.Decision{Boot: true, ImageID: "img"}}, discover(1, true)},
		{"nothing to boot", &fakeCentral{agents: []model.Agent{agent("a1", "198.18.40.11", 50)}, d: cdecide.Decision{Boot: false}}, discover(1, true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Referrer{Central: c.fc, Now: func() time.Time { return now }}
			d, err := r.Decide(context.Background(), c.client)
			if err != nil || d.Action != pxe.Ignore {
				t.Fatalf("%+v, %v; want ignore", d, err)
			}
		})
	}
	r := &Referrer{Central: &fakeCentral{down: true}, Now: func() time.Time { return now }}
	if _, err := r.Decide(context.Background(), discover(1, true)); err == nil {
		t.Fatal("Central down gave no error")
	}
}

func TestPickPrefersImageHolders(t *testing.T) {
	agents := []model.Agent{agent("a1", "198.18.40.11", 99), agent("a2", "198.18.40.12", 1, "img")}
	gi := netip.MustParseAddr("198.18.40.1")
	for i := 0; i < 50; i++ {
		a, addr := Pick(agents, [6]byte{2, 0, 0, 0, 0, byte(i)}, "img", gi)
		if a.ID != "a2" || addr.String() != "198.18.40.12" {
			t.Fatalf("client %d: picked %s at %v, want the holder a2", i, a.ID, addr)
		}
	}
	if _, addr := Pick(agents, [6]byte{}, "img", netip.MustParseAddr("198.18.41.1")); addr.IsValid() {
		t.Fatal("picked an agent outside the relay's subnet")
	}
}
