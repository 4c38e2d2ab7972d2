package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
)

// Dialect is what differs between databases.
type Dialect struct {
	Name string
	// Dollar placeholders ($1, $2, ...) instead of '?'.
	Dollar bool
	// Migrate runs fn holding a lock that keeps concurrent migrations of
	// other processes out (nil: no lock needed).
	LockMigrations      func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	UniqueViolation     func(error) bool
	ForeignKeyViolation func(error) bool
	// SnapshotTx are the options of a consistent read-only transaction.
	SnapshotTx *sql.TxOptions
}

// Store implements store.Store.
type Store struct {
	r, w     *sql.DB
	d        Dialect
	stateSQL *sql.Stmt
}

var _ store.Store = (*Store)(nil)

// New migrates the schema and returns a Store reading through r and writing
// through w (they may be the same pool).
func New(ctx context.Context, r, w *sql.DB, d Dialect) (*Store, error) {
	s := &Store{r: r, w: w, d: d}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	var err error
	s.stateSQL, err = r.PrepareContext(ctx, s.q(`SELECT m.config_version, m.state_version, c.deployment_id, c.consumed_at FROM meta m LEFT JOIN consumptions c ON c.client_key = ? WHERE m.id = 1`))
	if err != nil {
		return nil, fmt.Errorf("%s: prepare decision state: %w", d.Name, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: migrate: %w", s.d.Name, err)
	}
	defer conn.Close()
	if s.d.LockMigrations != nil {
		unlock, err := s.d.LockMigrations(ctx, conn)
		if err != nil {
			return fmt.Errorf("%s: migrate: lock: %w", s.d.Name, err)
		}
		defer unlock()
	}
	for _, stmt := range schema {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: migrate: %q: %w", s.d.Name, stmt[:min(len(stmt), 60)], err)
		}
	}
	return nil
}

// Close closes the pools.
func (s *Store) Close() error {
	s.stateSQL.Close()
	err := s.r.Close()
	if s.w != s.r {
		err = errors.Join(err, s.w.Close())
	}
	return err
}

// q rewrites '?' placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case s.d.UniqueViolation != nil && s.d.UniqueViolation(err):
		return fmt.Errorf("%s: %w: %v", op, store.ErrConflict, err)
	case s.d.ForeignKeyViolation != nil && s.d.ForeignKeyViolation(err):
		return fmt.Errorf("%s: %w: referenced row missing: %v", op, store.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
}

// write runs fn in a write transaction; bumpConfig/bumpState bump the
// versions in the same transaction.
func (s *Store) write(ctx context.Context, op string, bumpConfig, bumpState bool, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback()
	if bumpConfig || bumpState {
		c, st := 0, 0
		if bumpConfig {
			c = 1
		}
		if bumpState {
			st = 1
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE meta SET config_version = config_version + ?, state_version = state_version + ? WHERE id = 1`), c, st); err != nil {
			return s.wrap(op, err)
		}
	}
	if err := fn(tx); err != nil {
		return s.wrap(op, err)
	}
	return s.wrap(op, tx.Commit())
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func parseList(s string) []string {
	var v []string
	if json.Unmarshal([]byte(s), &v) != nil || v == nil {
		return []string{}
	}
	return v
}

func errNotFound(kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound)
}

// ---- machines ----

const machineBatch = 500

// UpsertMachines implements store.Store.
func (s *Store) UpsertMachines(ctx context.Context, ms []model.Machine) error {
	// The last entry for an id wins, as if applied one by one.
	last := make(map[string]int, len(ms))
	for i, m := range ms {
		last[m.ID] = i
	}
	uniq := make([]model.Machine, 0, len(last))
	for i, m := range ms {
		if last[m.ID] == i {
			uniq = append(uniq, m)
		}
	}
	return s.write(ctx, "upsert machines", true, false, func(tx *sql.Tx) error {
		for start := 0; start < len(uniq); start += machineBatch {
			batch := uniq[start:min(start+machineBatch, len(uniq))]
			var b strings.Builder
			b.WriteString(`INSERT INTO machines (id, name, mac, guid) VALUES `)
			args := make([]any, 0, 4*len(batch))
			for i, m := range batch {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?,?,?,?)")
				args = append(args, m.ID, m.Name, nullable(m.MAC), nullable(m.GUID))
			}
			b.WriteString(` ON CONFLICT (id) DO UPDATE SET name = excluded.name, mac = excluded.mac, guid = excluded.guid`)
			if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func scanMachine(sc interface{ Scan(...any) error }) (model.Machine, error) {
	var m model.Machine
	var mac, guid sql.NullString
	err := sc.Scan(&m.ID, &m.Name, &mac, &guid)
	m.MAC, m.GUID = mac.String, guid.String
	return m, err
}

// GetMachine implements store.Store.
func (s *Store) GetMachine(ctx context.Context, id string) (model.Machine, error) {
	m, err := scanMachine(s.r.QueryRowContext(ctx, s.q(`SELECT id, name, mac, guid FROM machines WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, errNotFound("machine", id)
	}
	return m, s.wrap("get machine", err)
}

// ListMachines implements store.Store.
func (s *Store) ListMachines(ctx context.Context) ([]model.Machine, error) {
	return listMachines(ctx, s.r)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func listMachines(ctx context.Context, q querier) ([]model.Machine, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, mac, guid FROM machines ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	defer rows.Close()
	out := []model.Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("list machines: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeleteMachine implements store.Store.
func (s *Store) DeleteMachine(ctx context.Context, id string) error {
	return s.write(ctx, "delete machine", true, true, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM consumptions WHERE client_key = ?`), "m:"+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM deployments WHERE machine_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM machines WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound("machine", id)
		}
		return nil
	})
}

// ---- images ----

// UpsertImage implements store.Store.
func (s *Store) UpsertImage(ctx context.Context, im model.Image) error {
	return s.write(ctx, "upsert image", true, false, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO images (id, arch, description, created_at) VALUES (?,?,?,?) ON CONFLICT (id) DO UPDATE SET arch = excluded.arch, description = excluded.description`),
			im.ID, string(im.Arch), im.Description, ns(im.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM image_files WHERE image_id = ?`), im.ID); err != nil {
			return err
		}
		for i, f := range im.Files {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO image_files (image_id, pos, name, size, sha256) VALUES (?,?,?,?,?)`), im.ID, i, f.Name, f.Size, f.SHA256); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetImage implements store.Store.
func (s *Store) GetImage(ctx context.Context, id string) (model.Image, error) {
	ims, err := listImages(ctx, s.r, s.q(`WHERE i.id = ?`), id)
	if err != nil {
		return model.Image{}, s.wrap("get image", err)
	}
	if len(ims) == 0 {
		return model.Image{}, errNotFound("image", id)
	}
	return ims[0], nil
}

// ListImages implements store.Store.
func (s *Store) ListImages(ctx context.Context) ([]model.Image, error) {
	ims, err := listImages(ctx, s.r, "")
	return ims, s.wrap("list images", err)
}

func listImages(ctx context.Context, q querier, where string, args ...any) ([]model.Image, error) {
	rows, err := q.QueryContext(ctx, `SELECT i.id, i.arch, i.description, i.created_at, f.name, f.size, f.sha256 FROM images i LEFT JOIN image_files f ON f.image_id = i.id `+where+` ORDER BY i.id, f.pos`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []model.Image{}
	for rows.Next() {
		var im model.Image
		var created int64
		var name, sha sql.NullString
		var size sql.NullInt64
		if err := rows.Scan(&im.ID, &im.Arch, &im.Description, &created, &name, &size, &sha); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != im.ID {
			im.CreatedAt = fromNS(created)
			im.Files = []model.ImageFile{}
			out = append(out, im)
		}
		if name.Valid {
			last := &out[len(out)-1]
			last.Files = append(last.Files, model.ImageFile{Name: name.String, Size: size.Int64, SHA256: sha.String})
		}
	}
	return out, rows.Err()
}

// DeleteImage implements store.Store.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	return s.write(ctx, "delete image", true, false, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM deployments WHERE image_id = ?`), id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("image %q is used by %d deployment(s): %w", id, n, store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM images WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound("image", id)
		}
		return nil
	})
}

// HasBlob implements store.Store.
func (s *Store) HasBlob(ctx context.Context, sha256 string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM image_files WHERE sha256 = ?`), sha256).Scan(&n)
	return n > 0, s.wrap("has blob", err)
}

// ---- deployments ----

// UpsertDeployment implements store.Store.
func (s *Store) UpsertDeployment(ctx context.Context, d model.Deployment) error {
	return s.write(ctx, "upsert deployment", true, false, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM images WHERE id = ?`), d.ImageID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errNotFound("image", d.ImageID)
		}
		if !d.UnknownComputers {
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM machines WHERE id = ?`), d.MachineID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return errNotFound("machine", d.MachineID)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO deployments (id, machine_id, unknown_computers, image_id, required, priority, subnets, created_at) VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (id) DO UPDATE SET machine_id = excluded.machine_id, unknown_computers = excluded.unknown_computers, image_id = excluded.image_id, required = excluded.required, priority = excluded.priority, subnets = excluded.subnets`),
			d.ID, nullable(d.MachineID), b2i(d.UnknownComputers), d.ImageID, b2i(d.Required), d.Priority, jsonList(d.Subnets), ns(d.CreatedAt))
		return err
	})
}

const deploymentCols = `SELECT id, machine_id, unknown_computers, image_id, required, priority, subnets, created_at FROM deployments`

func scanDeployment(sc interface{ Scan(...any) error }) (model.Deployment, error) {
	var d model.Deployment
	var machine sql.NullString
	var unknown, required int
	var subnets string
	var created int64
	err := sc.Scan(&d.ID, &machine, &unknown, &d.ImageID, &required, &d.Priority, &subnets, &created)
	d.MachineID, d.UnknownComputers, d.Required, d.CreatedAt = machine.String, unknown != 0, required != 0, fromNS(created)
	if l := parseList(subnets); len(l) > 0 {
		d.Subnets = l
	}
	return d, err
}

// GetDeployment implements store.Store.
func (s *Store) GetDeployment(ctx context.Context, id string) (model.Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, s.q(deploymentCols+` WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, errNotFound("deployment", id)
	}
	return d, s.wrap("get deployment", err)
}

// ListDeployments implements store.Store.
func (s *Store) ListDeployments(ctx context.Context) ([]model.Deployment, error) {
	ds, err := listDeployments(ctx, s.r)
	return ds, s.wrap("list deployments", err)
}

func listDeployments(ctx context.Context, q querier) ([]model.Deployment, error) {
	rows, err := q.QueryContext(ctx, deploymentCols+` ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []model.Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDeployment implements store.Store.
func (s *Store) DeleteDeployment(ctx context.Context, id string) error {
	return s.write(ctx, "delete deployment", true, true, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM consumptions WHERE deployment_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM deployments WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound("deployment", id)
		}
		return nil
	})
}

// ---- ignore list ----

// SetIgnoredMAC implements store.Store.
func (s *Store) SetIgnoredMAC(ctx context.Context, mac string, ignored bool) error {
	return s.write(ctx, "set ignored mac", true, false, func(tx *sql.Tx) error {
		if ignored {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO ignored_macs (mac) VALUES (?) ON CONFLICT (mac) DO NOTHING`), mac)
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM ignored_macs WHERE mac = ?`), mac)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound("ignored mac", mac)
		}
		return nil
	})
}

// ListIgnoredMACs implements store.Store.
func (s *Store) ListIgnoredMACs(ctx context.Context) ([]string, error) {
	l, err := listStrings(ctx, s.r, `SELECT mac FROM ignored_macs ORDER BY mac`)
	return l, s.wrap("list ignored macs", err)
}

func listStrings(ctx context.Context, q querier, query string) ([]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ---- snapshot and decision state ----

// Config implements store.Store.
func (s *Store) Config(ctx context.Context) (model.Config, model.Version, error) {
	var cfg model.Config
	var v model.Version
	tx, err := s.r.BeginTx(ctx, s.d.SnapshotTx)
	if err != nil {
		return cfg, v, s.wrap("config", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT config_version, state_version FROM meta WHERE id = 1`).Scan(&v.Config, &v.State); err != nil {
		return cfg, v, s.wrap("config", err)
	}
	if cfg.Machines, err = listMachines(ctx, tx); err != nil {
		return cfg, v, s.wrap("config", err)
	}
	if cfg.Deployments, err = listDeployments(ctx, tx); err != nil {
		return cfg, v, s.wrap("config", err)
	}
	if cfg.Images, err = listImages(ctx, tx, ""); err != nil {
		return cfg, v, s.wrap("config", err)
	}
	if cfg.IgnoredMACs, err = listStrings(ctx, tx, `SELECT mac FROM ignored_macs ORDER BY mac`); err != nil {
		return cfg, v, s.wrap("config", err)
	}
	return cfg, v, s.wrap("config", tx.Commit())
}

// Version implements store.Store.
func (s *Store) Version(ctx context.Context) (model.Version, error) {
	var v model.Version
	err := s.r.QueryRowContext(ctx, `SELECT config_version, state_version FROM meta WHERE id = 1`).Scan(&v.Config, &v.State)
	return v, s.wrap("version", err)
}

// DecisionState implements store.Store.
func (s *Store) DecisionState(ctx context.Context, clientKey string) (model.Version, []model.Consumption, error) {
	var v model.Version
	rows, err := s.stateSQL.QueryContext(ctx, clientKey)
	if err != nil {
		return v, nil, s.wrap("decision state", err)
	}
	defer rows.Close()
	var out []model.Consumption
	for rows.Next() {
		var dep sql.NullString
		var at sql.NullInt64
		if err := rows.Scan(&v.Config, &v.State, &dep, &at); err != nil {
			return v, nil, s.wrap("decision state", err)
		}
		if dep.Valid {
			out = append(out, model.Consumption{DeploymentID: dep.String, ClientKey: clientKey, At: fromNS(at.Int64)})
		}
	}
	return v, out, s.wrap("decision state", rows.Err())
}

// RecordConsumption implements store.Store.
func (s *Store) RecordConsumption(ctx context.Context, c model.Consumption) error {
	return s.write(ctx, "record consumption", false, true, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO consumptions (client_key, deployment_id, consumed_at) VALUES (?,?,?) ON CONFLICT (client_key, deployment_id) DO NOTHING`),
			c.ClientKey, c.DeploymentID, ns(c.At))
		return err
	})
}

// ClearConsumptions implements store.Store.
func (s *Store) ClearConsumptions(ctx context.Context, clientKey string) (int, error) {
	var n int64
	err := s.write(ctx, "clear consumptions", false, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM consumptions WHERE client_key = ?`), clientKey)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// ListConsumptions implements store.Store.
func (s *Store) ListConsumptions(ctx context.Context) ([]model.Consumption, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT client_key, deployment_id, consumed_at FROM consumptions ORDER BY client_key, deployment_id`)
	if err != nil {
		return nil, s.wrap("list consumptions", err)
	}
	defer rows.Close()
	out := []model.Consumption{}
	for rows.Next() {
		var c model.Consumption
		var at int64
		if err := rows.Scan(&c.ClientKey, &c.DeploymentID, &at); err != nil {
			return nil, s.wrap("list consumptions", err)
		}
		c.At = fromNS(at)
		out = append(out, c)
	}
	return out, s.wrap("list consumptions", rows.Err())
}

// ---- agents ----

// CreateAgent implements store.Store.
func (s *Store) CreateAgent(ctx context.Context, a model.Agent, tokenHash string) error {
	return s.write(ctx, "create agent", false, false, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO agents (id, token_hash, host, subnets, addresses, agent_version, weight, cpu_load, images, enrolled_at, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?)`),
			a.ID, tokenHash, a.Host, jsonList(a.Subnets), jsonList(a.Addresses), a.Version, a.Weight, a.Load, jsonList(a.Images), ns(a.EnrolledAt), ns(a.LastSeen))
		return err
	})
}

const agentCols = `SELECT id, host, subnets, addresses, agent_version, weight, cpu_load, images, enrolled_at, last_seen FROM agents`

func scanAgent(sc interface{ Scan(...any) error }) (model.Agent, error) {
	var a model.Agent
	var subnets, addrs, images string
	var enrolled, seen int64
	err := sc.Scan(&a.ID, &a.Host, &subnets, &addrs, &a.Version, &a.Weight, &a.Load, &images, &enrolled, &seen)
	a.Subnets, a.Addresses, a.Images = parseList(subnets), parseList(addrs), parseList(images)
	a.EnrolledAt, a.LastSeen = fromNS(enrolled), fromNS(seen)
	return a, err
}

// AgentByTokenHash implements store.Store.
func (s *Store) AgentByTokenHash(ctx context.Context, tokenHash string) (model.Agent, error) {
	a, err := scanAgent(s.r.QueryRowContext(ctx, s.q(agentCols+` WHERE token_hash = ?`), tokenHash))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent token: %w", store.ErrNotFound)
	}
	return a, s.wrap("agent by token", err)
}

// UpdateAgent implements store.Store.
func (s *Store) UpdateAgent(ctx context.Context, a model.Agent) error {
	return s.write(ctx, "update agent", false, false, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE agents SET host = ?, subnets = ?, addresses = ?, agent_version = ?, weight = ?, cpu_load = ?, images = ?, last_seen = ? WHERE id = ?`),
			a.Host, jsonList(a.Subnets), jsonList(a.Addresses), a.Version, a.Weight, a.Load, jsonList(a.Images), ns(a.LastSeen), a.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound("agent", a.ID)
		}
		return nil
	})
}

// ListAgents implements store.Store.
func (s *Store) ListAgents(ctx context.Context) ([]model.Agent, error) {
	rows, err := s.r.QueryContext(ctx, agentCols+` ORDER BY host, id`)
	if err != nil {
		return nil, s.wrap("list agents", err)
	}
	defer rows.Close()
	out := []model.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, s.wrap("list agents", err)
		}
		out = append(out, a)
	}
	return out, s.wrap("list agents", rows.Err())
}

// ---- events ----

// AddEvents implements store.Store.
func (s *Store) AddEvents(ctx context.Context, evs []model.Event) (int, error) {
	var added int64
	err := s.write(ctx, "add events", false, false, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO events (agent_id, id, event_time, event_type, mac, guid, subnet, image_id, deployment_id, required, detail, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (agent_id, id) DO NOTHING`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range evs {
			detail := string(e.Detail)
			res, err := stmt.ExecContext(ctx, e.AgentID, e.ID, ns(e.Time), e.Type, e.MAC, e.GUID, e.Subnet, e.ImageID, e.DeploymentID, b2i(e.Required), detail, ns(e.ReceivedAt))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += n
		}
		return nil
	})
	return int(added), err
}

// RecentEvents implements store.Store.
func (s *Store) RecentEvents(ctx context.Context, typ string, limit int) ([]model.Event, error) {
	query := `SELECT agent_id, id, event_time, event_type, mac, guid, subnet, image_id, deployment_id, required, detail, received_at FROM events`
	args := []any{}
	if typ != "" {
		query += ` WHERE event_type = ?`
		args = append(args, typ)
	}
	query += ` ORDER BY received_at DESC, event_time DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap("recent events", err)
	}
	defer rows.Close()
	out := []model.Event{}
	for rows.Next() {
		var e model.Event
		var t, recv int64
		var required int
		var detail string
		if err := rows.Scan(&e.AgentID, &e.ID, &t, &e.Type, &e.MAC, &e.GUID, &e.Subnet, &e.ImageID, &e.DeploymentID, &required, &detail, &recv); err != nil {
			return nil, s.wrap("recent events", err)
		}
		e.Time, e.ReceivedAt, e.Required = fromNS(t), fromNS(recv), required != 0
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		out = append(out, e)
	}
	return out, s.wrap("recent events", rows.Err())
}

// ---- secrets ----

// EnsureSecret implements store.Store.
func (s *Store) EnsureSecret(ctx context.Context, name, value string) (string, bool, error) {
	var stored string
	var created bool
	err := s.write(ctx, "ensure secret", false, false, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO secrets (name, value) VALUES (?,?) ON CONFLICT (name) DO NOTHING`), name, value)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return tx.QueryRowContext(ctx, s.q(`SELECT value FROM secrets WHERE name = ?`), name).Scan(&stored)
	})
	return stored, created, err
}
