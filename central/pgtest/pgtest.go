// Package pgtest starts a throw-away PostgreSQL server for tests: initdb
// into a temporary directory, postgres listening only on a unix socket in
// that directory, run as the "postgres" user (PostgreSQL refuses root), and
// stopped by PID when the test ends. It never touches a system service.
//
// Only tests and benchmarks import pgtest.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// BinDir is where Debian installs the PostgreSQL server programs.
var BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running throw-away PostgreSQL.
type Server struct {
	dir    string
	socket string
	admin  *sql.DB
	n      atomic.Int64
}

// Start initialises and starts a server; it is stopped and removed by
// tb.Cleanup. It fails the test if PostgreSQL cannot start.
func Start(tb testing.TB) *Server {
	tb.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		tb.Fatalf("pgtest: need the postgres user (Debian package postgresql): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "peerboot-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{dir: dir, socket: filepath.Join(dir, "sock")}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, s.socket} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	asPostgres := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
		cmd.Env = []string{"LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin"}
		return cmd
	}
	data := filepath.Join(dir, "data")
	initdb := asPostgres(exec.Command(filepath.Join(BinDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"))
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		tb.Fatal(err)
	}
	srv := asPostgres(exec.Command(filepath.Join(BinDir, "postgres"), "-D", data, "-k", s.socket, "-c", "listen_addresses=", "-p", "5432",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		tb.Fatalf("pgtest: start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	tb.Cleanup(func() {
		if s.admin != nil {
			s.admin.Close()
		}
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			srv.Process.Kill()
			<-done
		}
		logf.Close()
	})
	s.admin, err = sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = s.admin.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			tb.Fatalf("pgtest: postgres exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgtest: postgres not ready after 30s: %v", err)
		}
	}
	return s
}

// DSN returns a connection string for database db (keyword/value form).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", s.socket, db)
}

// URL returns a postgres:// URL for database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=5432&sslmode=disable", db, s.socket)
}

// NewDatabase creates an empty database and returns its name.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d", s.n.Add(1))
	if _, err := s.admin.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return name
}
