package api_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/pgtest"
	"github.com/peerboot/peerboot/central/store/postgres"
)

// Two Central replicas on one PostgreSQL serve the same agents
// consistently: config written through A is used by B's next decision, a
// required deployment consumed through A is not offered by B, a clear
// through B is seen by A, and an event batch retried against the other
// replica is not duplicated.
func TestTwoReplicasOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.URL(pg.NewDatabase(t))
	ctx := context.Background()
	blobDir := filepath.Join(t.TempDir(), "blobs") // shared, as replicas share image storage
	var reps []*env
	for range 2 {
		st, err := postgres.Open(ctx, dsn)
		must(t, err)
		t.Cleanup(func() { st.Close() })
		reps = append(reps, startServer(t, st, blobDir))
	}
	a, b := reps[0], reps[1]
	agentA := a.enroll(t, "pc-a", "198.18.1.0/24")
	agentB := clientFor(b, agentA)

	// B builds its decision index before A changes the config.
	d, err := agentB.Decide(ctx, api.DecideRequest{MAC: "02:00:00:00:00:01", Arch: "uefi-x64", Peek: true})
	must(t, err)
	if d.Boot {
		t.Fatalf("empty config decided %+v", d)
	}
	a.seedImage(t, "IMG64", model.ArchX64, []byte("img"))
	must(t, a.admin.Do(ctx, "POST", "/api/v1/machines", model.Machine{ID: "pc1", MAC: "02:00:00:00:00:01"}, nil))
	must(t, a.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "d-req", MachineID: "pc1", ImageID: "IMG64", Required: true}, nil))

	req := api.DecideRequest{MAC: "02:00:00:00:00:01", Arch: "uefi-x64"}
	d, err = agentB.Decide(ctx, req)
	must(t, err)
	if !d.Boot || !d.Required || d.DeploymentID != "d-req" {
		t.Fatalf("replica B did not see A's deployment: %+v", d)
	}
	d, err = agentA.Decide(ctx, req)
	must(t, err)
	if d.Boot {
		t.Fatalf("replica A offered the required deployment B already handed out: %+v", d)
	}
	must(t, b.admin.Do(ctx, "POST", "/api/v1/machines/pc1/clear-required", nil, nil))
	d, err = agentA.Decide(ctx, req)
	must(t, err)
	if !d.Required {
		t.Fatalf("replica A did not see the clear made through B: %+v", d)
	}

	batch := []model.Event{{ID: "boot-1", Type: model.EventElection}, {ID: "boot-2", Type: model.EventTransfer}}
	r1, err := agentA.PostEvents(ctx, batch)
	must(t, err)
	r2, err := agentB.PostEvents(ctx, batch)
	must(t, err)
	if r1.Accepted != 2 || r2.Accepted != 0 || r2.Duplicates != 2 {
		t.Fatalf("event retry across replicas: first %+v, retry %+v", r1, r2)
	}
	var evs []model.Event
	must(t, b.admin.Do(ctx, "GET", "/api/v1/events", nil, &evs))
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	// Both replicas hand out the same decision set version.
	_, tagA, err := agentA.DecisionSet(ctx, nil, "", 0)
	must(t, err)
	_, tagB, err := agentB.DecisionSet(ctx, nil, "", 0)
	must(t, err)
	if tagA != tagB {
		t.Fatalf("decision set ETags differ: %s vs %s", tagA, tagB)
	}
}
