package sqlstore

// schema is applied in order; each statement is idempotent, so a restart or
// a second replica starting at the same time is harmless.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY, config_version BIGINT NOT NULL, state_version BIGINT NOT NULL)`,
	`INSERT INTO meta (id, config_version, state_version) VALUES (1, 1, 1) ON CONFLICT (id) DO NOTHING`,
	`CREATE TABLE IF NOT EXISTS machines (id TEXT PRIMARY KEY, name TEXT NOT NULL, mac TEXT, guid TEXT)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS machines_mac ON machines (mac)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS machines_guid ON machines (guid)`,
	`CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, arch TEXT NOT NULL, description TEXT NOT NULL, created_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS image_files (image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE, pos INTEGER NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (image_id, name))`,
	`CREATE INDEX IF NOT EXISTS image_files_sha256 ON image_files (sha256)`,
	`CREATE TABLE IF NOT EXISTS deployments (id TEXT PRIMARY KEY, machine_id TEXT REFERENCES machines (id) ON DELETE CASCADE, unknown_computers INTEGER NOT NULL, image_id TEXT NOT NULL REFERENCES images (id), required INTEGER NOT NULL, priority INTEGER NOT NULL, subnets TEXT NOT NULL, created_at BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS deployments_image ON deployments (image_id)`,
	`CREATE INDEX IF NOT EXISTS deployments_machine ON deployments (machine_id)`,
	`CREATE TABLE IF NOT EXISTS ignored_macs (mac TEXT PRIMARY KEY)`,
	`CREATE TABLE IF NOT EXISTS consumptions (client_key TEXT NOT NULL, deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE, consumed_at BIGINT NOT NULL, PRIMARY KEY (client_key, deployment_id))`,
	`CREATE INDEX IF NOT EXISTS consumptions_deployment ON consumptions (deployment_id)`,
	`CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, host TEXT NOT NULL, subnets TEXT NOT NULL, addresses TEXT NOT NULL, agent_version TEXT NOT NULL, weight INTEGER NOT NULL, cpu_load DOUBLE PRECISION NOT NULL, images TEXT NOT NULL, enrolled_at BIGINT NOT NULL, last_seen BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS events (agent_id TEXT NOT NULL, id TEXT NOT NULL, event_time BIGINT NOT NULL, event_type TEXT NOT NULL, mac TEXT NOT NULL, guid TEXT NOT NULL, subnet TEXT NOT NULL, image_id TEXT NOT NULL, deployment_id TEXT NOT NULL, required INTEGER NOT NULL, detail TEXT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (agent_id, id))`,
	`CREATE INDEX IF NOT EXISTS events_received ON events (received_at)`,
	`CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}
