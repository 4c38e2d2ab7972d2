package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
)

// Run runs the contract suite; open must return a new, empty store that is
// closed by the test's cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Machines", testMachines},
		{"BulkImport", testBulkImport},
		{"ImagesAndDeployments", testImagesAndDeployments},
		{"IgnoreList", testIgnoreList},
		{"ConfigAndVersions", testConfigAndVersions},
		{"Consumptions", testConsumptions},
		{"Agents", testAgents},
		{"EventsIdempotent", testEvents},
		{"Secrets", testSecrets},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func seedImage(t *testing.T, s store.Store, id string, arch model.Arch) model.Image {
	im := model.Image{ID: id, Arch: arch, Description: "test " + id, CreatedAt: t0,
		Files: []model.ImageFile{{Name: "boot.wim", Size: 10, SHA256: fmt.Sprintf("%064x", len(id))}, {Name: "BCD", Size: 3, SHA256: fmt.Sprintf("%064x", 1000+len(id))}}}
	must(t, s.UpsertImage(context.Background(), im))
	return im
}

func testMachines(t *testing.T, s store.Store) {
	ctx := context.Background()
	m1 := model.Machine{ID: "pc1", Name: "PC 1", MAC: "02:00:00:00:00:01", GUID: "11111111-2222-3333-4444-555555555555"}
	m2 := model.Machine{ID: "pc2", Name: "PC 2", MAC: "02:00:00:00:00:02"}
	m3 := model.Machine{ID: "pc3", GUID: "33333333-2222-3333-4444-555555555555"}
	must(t, s.UpsertMachines(ctx, []model.Machine{m1, m2, m3}))
	got, err := s.GetMachine(ctx, "pc2")
	must(t, err)
	if got != m2 {
		t.Fatalf("GetMachine = %+v, want %+v", got, m2)
	}
	_, err = s.GetMachine(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	// A MAC taken by another machine is a conflict and changes nothing.
	err = s.UpsertMachines(ctx, []model.Machine{{ID: "pc4", MAC: m1.MAC}})
	wantErr(t, err, store.ErrConflict)
	if _, err := s.GetMachine(ctx, "pc4"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conflicting upsert left pc4 behind: %v", err)
	}
	// Update by id.
	m2.Name, m2.GUID = "renamed", "22222222-2222-3333-4444-555555555555"
	must(t, s.UpsertMachines(ctx, []model.Machine{m2}))
	list, err := s.ListMachines(ctx)
	must(t, err)
	if want := []model.Machine{m1, m2, m3}; !slices.Equal(list, want) {
		t.Fatalf("ListMachines = %+v, want %+v", list, want)
	}
	must(t, s.DeleteMachine(ctx, "pc3"))
	wantErr(t, s.DeleteMachine(ctx, "pc3"), store.ErrNotFound)
	list, err = s.ListMachines(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("after delete: %d machines, want 2", len(list))
	}
}

func testBulkImport(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 1234
	ms := make([]model.Machine, n)
	for i := range ms {
		ms[i] = model.Machine{ID: fmt.Sprintf("m%05d", i), MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)}
	}
	ms = append(ms, model.Machine{ID: "m00007", Name: "last wins", MAC: "02:00:00:00:00:07"})
	must(t, s.UpsertMachines(ctx, ms))
	list, err := s.ListMachines(ctx)
	must(t, err)
	if len(list) != n {
		t.Fatalf("imported %d machines, want %d", len(list), n)
	}
	if list[7].Name != "last wins" {
		t.Fatalf("duplicate id in one import: got %+v, want the last entry", list[7])
	}
	// One bad row rolls the whole import back.
	bad := []model.Machine{{ID: "x1", MAC: "02:00:00:01:00:01"}, {ID: "x2", MAC: "02:00:00:00:00:01"}}
	wantErr(t, s.UpsertMachines(ctx, bad), store.ErrConflict)
	if _, err := s.GetMachine(ctx, "x1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed import was not rolled back: %v", err)
	}
}

func testImagesAndDeployments(t *testing.T, s store.Store) {
	ctx := context.Background()
	im := seedImage(t, s, "IMG1", model.ArchX64)
	got, err := s.GetImage(ctx, "IMG1")
	must(t, err)
	if got.ID != im.ID || got.Arch != im.Arch || !got.CreatedAt.Equal(im.CreatedAt) || !slices.Equal(got.Files, im.Files) {
		t.Fatalf("GetImage = %+v, want %+v", got, im)
	}
	ok, err := s.HasBlob(ctx, im.Files[0].SHA256)
	must(t, err)
	if !ok {
		t.Fatal("HasBlob false for an image file")
	}
	ok, err = s.HasBlob(ctx, fmt.Sprintf("%064x", 999999))
	must(t, err)
	if ok {
		t.Fatal("HasBlob true for an unknown digest")
	}
	must(t, s.UpsertMachines(ctx, []model.Machine{{ID: "pc1", MAC: "02:00:00:00:00:01"}}))
	d := model.Deployment{ID: "d1", MachineID: "pc1", ImageID: "IMG1", Required: true, Priority: 3, Subnets: []string{"198.18.1.0/24"}, CreatedAt: t0}
	must(t, s.UpsertDeployment(ctx, d))
	gd, err := s.GetDeployment(ctx, "d1")
	must(t, err)
	if gd.ID != d.ID || gd.MachineID != d.MachineID || !gd.Required || gd.Priority != 3 || !slices.Equal(gd.Subnets, d.Subnets) || !gd.CreatedAt.Equal(t0) {
		t.Fatalf("GetDeployment = %+v, want %+v", gd, d)
	}
	wantErr(t, s.UpsertDeployment(ctx, model.Deployment{ID: "d2", MachineID: "nope", ImageID: "IMG1"}), store.ErrNotFound)
	wantErr(t, s.UpsertDeployment(ctx, model.Deployment{ID: "d3", MachineID: "pc1", ImageID: "NOPE"}), store.ErrNotFound)
	must(t, s.UpsertDeployment(ctx, model.Deployment{ID: "unk", UnknownComputers: true, ImageID: "IMG1", CreatedAt: t0}))
	// An image in use cannot be deleted.
	wantErr(t, s.DeleteImage(ctx, "IMG1"), store.ErrConflict)
	// Deleting the machine deletes its deployment.
	must(t, s.DeleteMachine(ctx, "pc1"))
	_, err = s.GetDeployment(ctx, "d1")
	wantErr(t, err, store.ErrNotFound)
	ds, err := s.ListDeployments(ctx)
	must(t, err)
	if len(ds) != 1 || ds[0].ID != "unk" || !ds[0].UnknownComputers {
		t.Fatalf("ListDeployments = %+v", ds)
	}
	must(t, s.DeleteDeployment(ctx, "unk"))
	wantErr(t, s.DeleteDeployment(ctx, "unk"), store.ErrNotFound)
	must(t, s.DeleteImage(ctx, "IMG1"))
	_, err = s.GetImage(ctx, "IMG1")
	wantErr(t, err, store.ErrNotFound)
}

func testIgnoreList(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:09", true))
	must(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:09", true))
	must(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:01", true))
	l, err := s.ListIgnoredMACs(ctx)
	must(t, err)
	if !slices.Equal(l, []string{"02:00:00:00:00:01", "02:00:00:00:00:09"}) {
		t.Fatalf("ListIgnoredMACs = %v", l)
	}
	must(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:01", false))
	wantErr(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:01", false), store.ErrNotFound)
}

func testConfigAndVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	v0, err := s.Version(ctx)
	must(t, err)
	seedImage(t, s, "IMG1", model.ArchX64)
	must(t, s.UpsertMachines(ctx, []model.Machine{{ID: "pc1", MAC: "02:00:00:00:00:01"}}))
	must(t, s.UpsertDeployment(ctx, model.Deployment{ID: "d1", MachineID: "pc1", ImageID: "IMG1", CreatedAt: t0}))
	must(t, s.SetIgnoredMAC(ctx, "02:00:00:00:00:99", true))
	cfg, v1, err := s.Config(ctx)
	must(t, err)
	if v1.Config <= v0.Config || v1.State != v0.State {
		t.Fatalf("config writes: version %+v -> %+v, want config bumped and state unchanged", v0, v1)
	}
	if len(cfg.Machines) != 1 || len(cfg.Deployments) != 1 || len(cfg.Images) != 1 || len(cfg.IgnoredMACs) != 1 {
		t.Fatalf("Config = %+v", cfg)
	}
	must(t, s.RecordConsumption(ctx, model.Consumption{DeploymentID: "d1", ClientKey: "m:pc1", At: t0}))
	v2, err := s.Version(ctx)
	must(t, err)
	if v2.Config != v1.Config || v2.State <= v1.State {
		t.Fatalf("consumption: version %+v -> %+v, want only state bumped", v1, v2)
	}
}

func testConsumptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedImage(t, s, "IMG1", model.ArchX64)
	must(t, s.UpsertMachines(ctx, []model.Machine{{ID: "pc1", MAC: "02:00:00:00:00:01"}}))
	must(t, s.UpsertDeployment(ctx, model.Deployment{ID: "d1", MachineID: "pc1", ImageID: "IMG1", Required: true, CreatedAt: t0}))
	must(t, s.UpsertDeployment(ctx, model.Deployment{ID: "d2", UnknownComputers: true, ImageID: "IMG1", Required: true, CreatedAt: t0}))
	v, cs, err := s.DecisionState(ctx, "m:pc1")
	must(t, err)
	if len(cs) != 0 || v.Config == 0 {
		t.Fatalf("DecisionState before = %+v %+v", v, cs)
	}
	must(t, s.RecordConsumption(ctx, model.Consumption{DeploymentID: "d1", ClientKey: "m:pc1", At: t0}))
	// The first run counts: a later record does not move the time.
	must(t, s.RecordConsumption(ctx, model.Consumption{DeploymentID: "d1", ClientKey: "m:pc1", At: t0.Add(time.Hour)}))
	must(t, s.RecordConsumption(ctx, model.Consumption{DeploymentID: "d2", ClientKey: "mac:02:00:00:00:00:50", At: t0}))
	wantErr(t, s.RecordConsumption(ctx, model.Consumption{DeploymentID: "nope", ClientKey: "m:pc1", At: t0}), store.ErrNotFound)
	_, cs, err = s.DecisionState(ctx, "m:pc1")
	must(t, err)
	if len(cs) != 1 || cs[0].DeploymentID != "d1" || !cs[0].At.Equal(t0) {
		t.Fatalf("DecisionState = %+v, want d1 at %v", cs, t0)
	}
	all, err := s.ListConsumptions(ctx)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("ListConsumptions = %+v", all)
	}
	n, err := s.ClearConsumptions(ctx, "m:pc1")
	must(t, err)
	if n != 1 {
		t.Fatalf("ClearConsumptions = %d, want 1", n)
	}
	_, cs, err = s.DecisionState(ctx, "m:pc1")
	must(t, err)
	if len(cs) != 0 {
		t.Fatalf("after clear: %+v", cs)
	}
	// Deleting a deployment forgets its consumptions.
	must(t, s.DeleteDeployment(ctx, "d2"))
	all, err = s.ListConsumptions(ctx)
	must(t, err)
	if len(all) != 0 {
		t.Fatalf("consumptions of a deleted deployment remain: %+v", all)
	}
}

func testAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := model.Agent{ID: "a1", Host: "pc-a", Subnets: []string{"198.18.1.0/24"}, Addresses: []string{"198.18.1.5"}, Version: "1.0", Weight: 50, EnrolledAt: t0, LastSeen: t0}
	must(t, s.CreateAgent(ctx, a, "hash-a1"))
	wantErr(t, s.CreateAgent(ctx, model.Agent{ID: "a2", Host: "x"}, "hash-a1"), store.ErrConflict)
	got, err := s.AgentByTokenHash(ctx, "hash-a1")
	must(t, err)
	if got.ID != "a1" || got.Host != "pc-a" || !slices.Equal(got.Subnets, a.Subnets) || !got.LastSeen.Equal(t0) || got.Weight != 50 {
		t.Fatalf("AgentByTokenHash = %+v", got)
	}
	_, err = s.AgentByTokenHash(ctx, "wrong")
	wantErr(t, err, store.ErrNotFound)
	a.Load, a.Images, a.LastSeen, a.Subnets = 0.5, []string{"IMG1"}, t0.Add(time.Minute), []string{"198.18.1.0/24", "198.18.2.0/24"}
	must(t, s.UpdateAgent(ctx, a))
	wantErr(t, s.UpdateAgent(ctx, model.Agent{ID: "ghost"}), store.ErrNotFound)
	l, err := s.ListAgents(ctx)
	must(t, err)
	if len(l) != 1 || l[0].Load != 0.5 || !slices.Equal(l[0].Images, []string{"IMG1"}) || len(l[0].Subnets) != 2 || !l[0].EnrolledAt.Equal(t0) {
		t.Fatalf("ListAgents = %+v", l)
	}
}

func testEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	batch := []model.Event{
		{ID: "e1", AgentID: "a1", Time: t0, Type: model.EventPXEBoot, MAC: "02:00:00:00:00:01", ImageID: "IMG1", Required: true, Detail: json.RawMessage(`{"bytes":10}`), ReceivedAt: t0},
		{ID: "e2", AgentID: "a1", Time: t0.Add(time.Second), Type: model.EventElection, ReceivedAt: t0},
		{ID: "e1", AgentID: "a2", Time: t0, Type: model.EventTransfer, ReceivedAt: t0.Add(time.Second)},
	}
	n, err := s.AddEvents(ctx, batch)
	must(t, err)
	if n != 3 {
		t.Fatalf("AddEvents = %d, want 3", n)
	}
	// A retried batch (plus one new event) adds only the new one.
	n, err = s.AddEvents(ctx, append(batch, model.Event{ID: "e3", AgentID: "a1", Type: model.EventPXEDecision, ReceivedAt: t0.Add(2 * time.Second)}))
	must(t, err)
	if n != 1 {
		t.Fatalf("retried AddEvents = %d, want 1", n)
	}
	all, err := s.RecentEvents(ctx, "", 100)
	must(t, err)
	if len(all) != 4 || all[0].ID != "e3" {
		t.Fatalf("RecentEvents = %+v", all)
	}
	boots, err := s.RecentEvents(ctx, model.EventPXEBoot, 10)
	must(t, err)
	if len(boots) != 1 || !boots[0].Required || string(boots[0].Detail) != `{"bytes":10}` || boots[0].MAC != "02:00:00:00:00:01" {
		t.Fatalf("RecentEvents(pxe.boot) = %+v", boots)
	}
	two, err := s.RecentEvents(ctx, "", 2)
	must(t, err)
	if len(two) != 2 {
		t.Fatalf("limit 2 returned %d", len(two))
	}
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := context.Background()
	v, created, err := s.EnsureSecret(ctx, "admin", "first")
	must(t, err)
	if v != "first" || !created {
		t.Fatalf("EnsureSecret = %q %v", v, created)
	}
	v, created, err = s.EnsureSecret(ctx, "admin", "second")
	must(t, err)
	if v != "first" || created {
		t.Fatalf("second EnsureSecret = %q %v, want the first value kept", v, created)
	}
}
