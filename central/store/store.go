package store

import (
	"context"
	"errors"

	"github.com/peerboot/peerboot/central/model"
)

// Errors every implementation returns (wrapped) so callers can map them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is Central's persistent state. Every method is safe for concurrent
// use, and several Central processes may share one store (PostgreSQL): all
// consistency lives in the database, never in process memory.
type Store interface {
	// UpsertMachines creates or replaces machines by id, all in one
	// transaction. A MAC or GUID already used by another machine is
	// ErrConflict.
	UpsertMachines(ctx context.Context, ms []model.Machine) error
	GetMachine(ctx context.Context, id string) (model.Machine, error)
	ListMachines(ctx context.Context) ([]model.Machine, error)
	// DeleteMachine deletes the machine, its deployments and its consumed
	// required deployments.
	DeleteMachine(ctx context.Context, id string) error

	UpsertImage(ctx context.Context, im model.Image) error
	GetImage(ctx context.Context, id string) (model.Image, error)
	ListImages(ctx context.Context) ([]model.Image, error)
	// DeleteImage is ErrConflict while a deployment uses the image.
	DeleteImage(ctx context.Context, id string) error
	// HasBlob reports whether any image file has this sha256.
	HasBlob(ctx context.Context, sha256 string) (bool, error)

	// UpsertDeployment creates or replaces a deployment; the machine (unless
	// for unknown computers) and the image must exist (else ErrNotFound).
	UpsertDeployment(ctx context.Context, d model.Deployment) error
	GetDeployment(ctx context.Context, id string) (model.Deployment, error)
	ListDeployments(ctx context.Context) ([]model.Deployment, error)
	DeleteDeployment(ctx context.Context, id string) error

	SetIgnoredMAC(ctx context.Context, mac string, ignored bool) error
	ListIgnoredMACs(ctx context.Context) ([]string, error)

	// Config returns everything decisions depend on with its version,
	// read in one consistent snapshot.
	Config(ctx context.Context) (model.Config, model.Version, error)
	Version(ctx context.Context) (model.Version, error)

	// DecisionState returns the current version and the client's consumed
	// required deployments in one round trip: the hot path of a decision.
	DecisionState(ctx context.Context, clientKey string) (model.Version, []model.Consumption, error)
	// RecordConsumption records that a client ran a required deployment;
	// an existing record is kept (the first run counts).
	RecordConsumption(ctx context.Context, c model.Consumption) error
	// ClearConsumptions forgets the client's consumed required deployments
	// ("clear required PXE deployments") and returns how many there were.
	ClearConsumptions(ctx context.Context, clientKey string) (int, error)
	ListConsumptions(ctx context.Context) ([]model.Consumption, error)

	// CreateAgent stores a newly enrolled agent with the SHA-256 of its token.
	CreateAgent(ctx context.Context, a model.Agent, tokenHash string) error
	AgentByTokenHash(ctx context.Context, tokenHash string) (model.Agent, error)
	// UpdateAgent stores what a heartbeat reports (everything except the
	// id and enrollment time).
	UpdateAgent(ctx context.Context, a model.Agent) error
	ListAgents(ctx context.Context) ([]model.Agent, error)

	// AddEvents stores events, skipping any whose (agent id, event id) is
	// already stored, and returns how many were new.
	AddEvents(ctx context.Context, evs []model.Event) (int, error)
	// RecentEvents returns up to limit events, newest first; typ filters
	// by type when not empty.
	RecentEvents(ctx context.Context, typ string, limit int) ([]model.Event, error)

	// EnsureSecret stores value under name unless a value is already there,
	// and returns the stored value and whether this call created it.
	EnsureSecret(ctx context.Context, name, value string) (string, bool, error)

	Close() error
}
