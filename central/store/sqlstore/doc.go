// Package sqlstore implements store.Store on database/sql for both SQLite
// (modernc.org/sqlite) and PostgreSQL (pgx's database/sql driver): one
// schema, one set of queries, with the small differences (placeholders,
// error codes, migration locking) supplied by a Dialect.
//
// sqlstore must not import a driver; the sqlite and postgres packages do.
package sqlstore
