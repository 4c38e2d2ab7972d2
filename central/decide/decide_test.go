package decide

import (
	"net/netip"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/model"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testConfig() model.Config {
	return model.Config{
		Machines: []model.Machine{
			{ID: "pc1", MAC: "02:00:00:00:00:01", GUID: "11111111-2222-3333-4444-555555555555"},
			{ID: "pc2", MAC: "02:00:00:00:00:02"},
			{ID: "pc3", GUID: "33333333-2222-3333-4444-555555555555"},
			{ID: "pc4", MAC: "02:00:00:00:00:04"},
			{ID: "pc5", MAC: "02:00:00:00:00:05"},
			{ID: "pc6", MAC: "02:00:00:00:00:06"},
		},
		Images: []model.Image{
			{ID: "IMG64", Arch: model.ArchX64},
			{ID: "IMG86", Arch: model.ArchX86},
			{ID: "IMGARM", Arch: model.ArchARM64},
			{ID: "IMG64B", Arch: model.ArchX64},
		},
		Deployments: []model.Deployment{
			// pc1: an available deployment (newer, higher priority) and a required one.
			{ID: "d-avail", MachineID: "pc1", ImageID: "IMG64B", Priority: 9, CreatedAt: t0.Add(time.Hour)},
			{ID: "d-req", MachineID: "pc1", ImageID: "IMG64", Required: true, CreatedAt: t0},
			// pc2: only an x86 image.
			{ID: "d-x86", MachineID: "pc2", ImageID: "IMG86", Required: true, CreatedAt: t0},
			// pc3: two available; higher priority wins over newer.
			{ID: "d-p1", MachineID: "pc3", ImageID: "IMG64", Priority: 1, CreatedAt: t0.Add(time.Hour)},
			{ID: "d-p5", MachineID: "pc3", ImageID: "IMG64B", Priority: 5, CreatedAt: t0},
			// pc4: same priority, newest wins.
			{ID: "d-old", MachineID: "pc4", ImageID: "IMG64", CreatedAt: t0},
			{ID: "d-new", MachineID: "pc4", ImageID: "IMG64B", CreatedAt: t0.Add(time.Minute)},
			// pc5: limited to a subnet.
			{ID: "d-subnet", MachineID: "pc5", ImageID: "IMG64", Subnets: []string{"198.18.7.0/24"}, CreatedAt: t0},
			// pc6 has no deployment: known machines never get the unknown-computers one.
			// unknown computers: x64 and arm64.
			{ID: "d-unk64", UnknownComputers: true, ImageID: "IMG64", Required: true, CreatedAt: t0},
			{ID: "d-unkarm", UnknownComputers: true, ImageID: "IMGARM", CreatedAt: t0},
			// a deployment to a missing image is ignored.
			{ID: "d-missing", MachineID: "pc6", ImageID: "NOPE", Required: true, CreatedAt: t0},
		},
		IgnoredMACs: []string{"02:00:00:00:00:99", "02:00:00:00:00:02"},
	}
}

func TestDecide(t *testing.T) {
	ix := NewIndex(testConfig())
	uefi64 := ClientArch{UEFI, model.ArchX64}
	uefi86 := ClientArch{UEFI, model.ArchX86}
	bios64 := ClientArch{BIOS, model.ArchX64}
	bios86 := ClientArch{BIOS, model.ArchX86}
	arm := ClientArch{UEFI, model.ArchARM64}
	in7 := netip.MustParseAddr("198.18.7.20")
	in8 := netip.MustParseAddr("198.18.8.20")
	tests := []struct {
		name     string
		req      Request
		consumed map[string]time.Time
		window   time.Duration
		want     Decision
	}{
		{"required before available even when available is newer and higher priority",
			Request{MAC: "02:00:00:00:00:01", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-req", MachineID: "pc1", ClientKey: "m:pc1", Reason: ReasonDeployment}},
		{"lookup by GUID alone",
			Request{GUID: "11111111-2222-3333-4444-555555555555", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-req", MachineID: "pc1", ClientKey: "m:pc1", Reason: ReasonDeployment}},
		{"GUID wins over a MAC of another machine",
			Request{MAC: "02:00:00:00:00:04", GUID: "33333333-2222-3333-4444-555555555555", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64B", ImageArch: model.ArchX64, DeploymentID: "d-p5", MachineID: "pc3", ClientKey: "m:pc3", Reason: ReasonDeployment}},
		{"consumed required: the available one is offered",
			Request{MAC: "02:00:00:00:00:01", Arch: uefi64, Now: t0.Add(time.Hour)}, map[string]time.Time{"d-req": t0}, time.Minute,
			Decision{Boot: true, ImageID: "IMG64B", ImageArch: model.ArchX64, DeploymentID: "d-avail", MachineID: "pc1", ClientKey: "m:pc1", Reason: ReasonDeployment}},
		{"consumed required within the repeat window is the same boot",
			Request{MAC: "02:00:00:00:00:01", Arch: uefi64, Now: t0.Add(10 * time.Second)}, map[string]time.Time{"d-req": t0}, time.Minute,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-req", MachineID: "pc1", ClientKey: "m:pc1", Repeat: true, Reason: ReasonDeployment}},
		{"priority beats newest among available",
			Request{GUID: "33333333-2222-3333-4444-555555555555", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64B", ImageArch: model.ArchX64, DeploymentID: "d-p5", MachineID: "pc3", ClientKey: "m:pc3", Reason: ReasonDeployment}},
		{"same priority: newest wins",
			Request{MAC: "02:00:00:00:00:04", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64B", ImageArch: model.ArchX64, DeploymentID: "d-new", MachineID: "pc4", ClientKey: "m:pc4", Reason: ReasonDeployment}},
		{"ignored MAC gets nothing even with a deployment",
			Request{MAC: "02:00:00:00:00:02", Arch: bios86}, nil, 0,
			Decision{Reason: ReasonIgnored}},
		{"ignored unknown MAC gets nothing, not the unknown-computers deployment",
			Request{MAC: "02:00:00:00:00:99", Arch: uefi64}, nil, 0,
			Decision{Reason: ReasonIgnored}},
		{"unknown computer gets the unknown-computers deployment of its arch",
			Request{MAC: "02:00:00:00:00:50", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-unk64", ClientKey: "mac:02:00:00:00:00:50", Reason: ReasonUnknown}},
		{"unknown arm64 computer gets the arm64 one",
			Request{MAC: "02:00:00:00:00:51", Arch: arm}, nil, 0,
			Decision{Boot: true, ImageID: "IMGARM", ImageArch: model.ArchARM64, DeploymentID: "d-unkarm", ClientKey: "mac:02:00:00:00:00:51", Reason: ReasonUnknown}},
		{"unknown computer that consumed its required deployment gets nothing",
			Request{MAC: "02:00:00:00:00:50", Arch: uefi64, Now: t0.Add(time.Hour)}, map[string]time.Time{"d-unk64": t0}, time.Minute,
			Decision{ClientKey: "mac:02:00:00:00:00:50", Reason: ReasonConsumed}},
		{"unknown x86 UEFI computer: no exact arch match",
			Request{MAC: "02:00:00:00:00:52", Arch: uefi86}, nil, 0,
			Decision{ClientKey: "mac:02:00:00:00:00:52", Reason: ReasonNoArch}},
		{"known machine without deployment does not get unknown-computers",
			Request{MAC: "02:00:00:00:00:06", Arch: uefi64}, nil, 0,
			Decision{MachineID: "pc6", ClientKey: "m:pc6", Reason: ReasonNoDeployment}},
		{"UEFI x64 may not use an x86 image",
			Request{GUID: "22222222-0000-0000-0000-000000000000", MAC: "02:00:00:00:00:03", Arch: uefi64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-unk64", ClientKey: "mac:02:00:00:00:00:03", Reason: ReasonUnknown}},
		{"subnet-scoped deployment inside its subnet",
			Request{MAC: "02:00:00:00:00:05", Arch: uefi64, Subnet: in7}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, DeploymentID: "d-subnet", MachineID: "pc5", ClientKey: "m:pc5", Reason: ReasonDeployment}},
		{"subnet-scoped deployment outside its subnet",
			Request{MAC: "02:00:00:00:00:05", Arch: uefi64, Subnet: in8}, nil, 0,
			Decision{MachineID: "pc5", ClientKey: "m:pc5", Reason: ReasonNoDeployment}},
		{"no identity",
			Request{Arch: uefi64}, nil, 0,
			Decision{Reason: ReasonNoIdentity}},
		{"BIOS x64 unknown computer may use x64",
			Request{MAC: "02:00:00:00:00:53", Arch: bios64}, nil, 0,
			Decision{Boot: true, ImageID: "IMG64", ImageArch: model.ArchX64, Required: true, DeploymentID: "d-unk64", ClientKey: "mac:02:00:00:00:00:53", Reason: ReasonUnknown}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(ix, tc.req, tc.consumed, tc.window)
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBIOSx64MayUseX86ButUEFIMayNot(t *testing.T) {
	cfg := model.Config{
		Machines:    []model.Machine{{ID: "pc", MAC: "02:00:00:00:00:0a"}},
		Images:      []model.Image{{ID: "X86", Arch: model.ArchX86}},
		Deployments: []model.Deployment{{ID: "d", MachineID: "pc", ImageID: "X86", Required: true}},
	}
	ix := NewIndex(cfg)
	for _, tc := range []struct {
		arch string
		boot bool
	}{{"bios-x64", true}, {"0", true}, {"bios-x86", true}, {"uefi-x64", false}, {"9", false}, {"uefi-x86", true}, {"6", true}} {
		a, err := ParseClientArch(tc.arch)
		if err != nil {
			t.Fatal(err)
		}
		got := Decide(ix, Request{MAC: "02:00:00:00:00:0a", Arch: a}, nil, 0)
		if got.Boot != tc.boot {
			t.Errorf("arch %s: boot=%v, want %v (%s)", tc.arch, got.Boot, tc.boot, got.Reason)
		}
	}
}

func TestParseClientArchRejects(t *testing.T) {
	for _, s := range []string{"", "bios-arm64", "efi-x64", "uefi-mips", "12", "-1", "uefi"} {
		if _, err := ParseClientArch(s); err == nil {
			t.Errorf("ParseClientArch(%q) accepted", s)
		}
	}
}

func TestUnusableGUIDsAreDropped(t *testing.T) {
	for _, s := range []string{"00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "{ffffffffffffffffffffffffffffffff}"} {
		g, usable, err := model.NormalizeGUID(s)
		if err != nil || usable {
			t.Errorf("NormalizeGUID(%q) = %q usable=%v err=%v; want unusable", s, g, usable, err)
		}
	}
	g, usable, err := model.NormalizeGUID("{11111111-2222-3333-4444-55555555555A}")
	if err != nil || !usable || g != "11111111-2222-3333-4444-55555555555a" {
		t.Errorf("got %q %v %v", g, usable, err)
	}
}

func TestDecideDoesNotAllocateForUnknownMAC(t *testing.T) {
	ix := NewIndex(testConfig())
	req := Request{MAC: "02:00:00:00:00:06", Arch: ClientArch{UEFI, model.ArchX64}}
	allocs := testing.AllocsPerRun(100, func() { _ = Decide(ix, req, nil, 0) })
	if allocs > 1 {
		t.Errorf("Decide allocates %.0f times per call", allocs)
	}
}
