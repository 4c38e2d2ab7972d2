// Package postgres opens Central's scale-out store on PostgreSQL through
// github.com/jackc/pgx/v5 (its database/sql driver). Several Central
// replicas may share one database: every decision reads its consumed
// required deployments and the config version from the database, and
// migrations take an advisory lock.
//
// It must not import the HTTP layers.
package postgres
