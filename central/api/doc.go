// Package api is Central's JSON HTTP API under /api/v1/ (machines,
// deployments, images and blobs, ignore list, agents, decisions, decision
// sets, events), plus /healthz, /metrics (Prometheus text format) and the
// hand-written OpenAPI document at /api/v1/openapi.json.
//
// Boot decisions are served from an in-memory index of the configuration,
// rebuilt when the store's config version changes (checked on every
// decision, in the same query that reads the client's consumed required
// deployments), so replicas sharing one PostgreSQL stay consistent.
//
// api depends on central/store's interface, never on a store implementation
// or a database driver.
package api
