package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/peerboot/peerboot/central/store"
	"github.com/peerboot/peerboot/central/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "central.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EnsureSecret(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, created, err := s.EnsureSecret(ctx, "k", "v2")
	if err != nil || created || v != "v1" {
		t.Fatalf("after reopen: %q created=%v err=%v", v, created, err)
	}
}
