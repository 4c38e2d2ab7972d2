package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/peerboot/peerboot/central/api"
)

// state is what an agent keeps across restarts besides images and events.
type state struct {
	AgentID     string `json:"agent_id"`
	Token       string `json:"token"`
	CentralURL  string `json:"central_url"`
	ElectionKey string `json:"election_key"`
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return true, nil
}

func statePath(dir string) string { return filepath.Join(dir, "agent.json") }

// savedSet is the decision set on disk with when Central last confirmed it.
type savedSet struct {
	Set       *api.DecisionSet `json:"set"`
	ETag      string           `json:"etag"`
	FetchedAt time.Time        `json:"fetched_at"`
}

func setPath(dir string) string { return filepath.Join(dir, "decision-set.json") }
