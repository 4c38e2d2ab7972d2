package postgres

import (
	"context"
	"testing"

	"github.com/peerboot/peerboot/central/pgtest"
	"github.com/peerboot/peerboot/central/store"
	"github.com/peerboot/peerboot/central/store/storetest"
)

func TestContract(t *testing.T) {
	pg := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), pg.URL(pg.NewDatabase(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Two stores (as two replicas would open) migrating one database at the
// same time must both succeed and see each other's writes.
func TestConcurrentMigrationAndSharedState(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.URL(pg.NewDatabase(t))
	ctx := context.Background()
	type res struct {
		s   store.Store
		err error
	}
	ch := make(chan res, 2)
	for range 2 {
		go func() {
			s, err := Open(ctx, dsn)
			ch <- res{s, err}
		}()
	}
	var ss []store.Store
	for range 2 {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.s.Close() })
		ss = append(ss, r.s)
	}
	if _, _, err := ss[0].EnsureSecret(ctx, "admin", "a"); err != nil {
		t.Fatal(err)
	}
	v, created, err := ss[1].EnsureSecret(ctx, "admin", "b")
	if err != nil || created || v != "a" {
		t.Fatalf("replica B sees %q created=%v err=%v, want a's value", v, created, err)
	}
}
