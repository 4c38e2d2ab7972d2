package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/peerboot/peerboot/central/store/sqlstore"
)

// migrationLockID is the pg_advisory_lock key migrations hold.
const migrationLockID = 0x70656572 // "peer"

// Open connects to the database named by dsn (postgres:// URL or
// keyword/value string) and migrates it.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	d := sqlstore.Dialect{
		Name:   "postgres",
		Dollar: true,
		LockMigrations: func(ctx context.Context, conn *sql.Conn) (func(), error) {
			if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
				return nil, err
			}
			return func() { conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLockID) }, nil
		},
		UniqueViolation:     func(err error) bool { return pgCode(err) == "23505" },
		ForeignKeyViolation: func(err error) bool { return pgCode(err) == "23503" },
		SnapshotTx:          &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	}
	s, err := sqlstore.New(ctx, db, db, d)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
