package api

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
)

// decider answers boot decisions from an in-memory index of the config.
// Every decision reads the store's config version together with the
// client's consumed required deployments (one query); a newer version
// rebuilds the index first, so a write through any replica is seen by all.
type decider struct {
	st      store.Store
	window  time.Duration
	metrics *metrics

	mu  sync.Mutex // serialises rebuilds
	cur atomic.Pointer[snapshot]
}

type snapshot struct {
	version model.Version
	cfg     model.Config
	ix      *decide.Index
}

// snapshotAtLeast returns an index of config version >= want (0: any).
func (d *decider) snapshotAtLeast(ctx context.Context, want int64) (*snapshot, error) {
	if s := d.cur.Load(); s != nil && s.version.Config >= want {
		return s, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && s.version.Config >= want {
		return s, nil
	}
	cfg, v, err := d.st.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("load decision config: %w", err)
	}
	s := &snapshot{version: v, cfg: cfg, ix: decide.NewIndex(cfg)}
	d.cur.Store(s)
	d.metrics.add(1, "peerboot_central_index_rebuilds_total")
	return s, nil
}

// decide answers one request and returns the index it used.
func (d *decider) decide(ctx context.Context, req decide.Request) (decide.Decision, *snapshot, error) {
	snap, err := d.snapshotAtLeast(ctx, 0)
	if err != nil {
		return decide.Decision{}, nil, err
	}
	for range 3 {
		key, _ := snap.ix.ClientKey(req.MAC, req.GUID)
		v, cons, err := d.st.DecisionState(ctx, key)
		if err != nil {
			return decide.Decision{}, nil, err
		}
		if v.Config > snap.version.Config {
			if snap, err = d.snapshotAtLeast(ctx, v.Config); err != nil {
				return decide.Decision{}, nil, err
			}
			continue
		}
		var consumed map[string]time.Time
		if len(cons) > 0 {
			consumed = make(map[string]time.Time, len(cons))
			for _, c := range cons {
				consumed[c.DeploymentID] = c.At
			}
		}
		return decide.Decide(snap.ix, req, consumed, d.window), snap, nil
	}
	return decide.Decision{}, nil, fmt.Errorf("decide: config kept changing")
}
