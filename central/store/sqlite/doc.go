// Package sqlite opens Central's default store: a single SQLite file
// (modernc.org/sqlite, pure Go) in WAL mode, migrated on open. Reads go
// through a pool of connections; writes through one connection with
// immediate transactions, so writers never deadlock each other.
//
// It must not import the HTTP layers.
package sqlite
