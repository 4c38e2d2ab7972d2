package central

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/store"
	"github.com/peerboot/peerboot/central/store/postgres"
	"github.com/peerboot/peerboot/central/store/sqlite"
	"github.com/peerboot/peerboot/central/web"
)

// Config is the command line of `peerboot central`.
type Config struct {
	Listen  string // ADDR:PORT
	DataDir string // SQLite database (unless DB is set) and boot image blobs
	DB      string // postgres://... to use PostgreSQL; empty = SQLite in DataDir
	TLSCert string
	TLSKey  string
	// RequiredRepeatWindow: see api.Options.
	RequiredRepeatWindow time.Duration
	Log                  *slog.Logger
	// Ready, if set, is called with the listening address once serving.
	Ready func(addr net.Addr)
}

// Secret names in the store (values are SHA-256 digests, never the
// secrets themselves).
const (
	secretAdmin  = "admin_token_sha256"
	secretEnroll = "enrollment_key_sha256"
)

// OpenStore opens PostgreSQL when db is a postgres:// URL, else SQLite in
// dataDir.
func OpenStore(ctx context.Context, db, dataDir string) (store.Store, error) {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return postgres.Open(ctx, db)
	}
	if db != "" {
		return nil, fmt.Errorf("--db %q: want a postgres:// URL (SQLite is the default)", db)
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, "central.db"))
}

// Bootstrap makes sure the admin token and enrollment key exist. On first
// start it creates them and returns them in clear (to print once); after
// that only their digests are stored and the returned strings are empty.
func Bootstrap(ctx context.Context, st store.Store) (adminHash, enrollHash, newAdmin, newEnroll string, err error) {
	tok, key := api.NewSecret(), api.NewSecret()
	adminHash, created, err := st.EnsureSecret(ctx, secretAdmin, api.HashSecret(tok))
	if err != nil {
		return "", "", "", "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	if created {
		newAdmin = tok
	}
	enrollHash, created, err = st.EnsureSecret(ctx, secretEnroll, api.HashSecret(key))
	if err != nil {
		return "", "", "", "", fmt.Errorf("bootstrap enrollment key: %w", err)
	}
	if created {
		newEnroll = key
	}
	return adminHash, enrollHash, newAdmin, newEnroll, nil
}

// Run serves Central until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	TuneGC()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir == "" {
		return errors.New("--data-dir is required (database and boot images live there)")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	adminHash, enrollHash, newAdmin, newEnroll, err := Bootstrap(ctx, st)
	if err != nil {
		return err
	}
	if newAdmin != "" {
		fmt.Fprintf(stdout, "admin token: %s\n", newAdmin)
	}
	if newEnroll != "" {
		fmt.Fprintf(stdout, "enrollment key: %s\n", newEnroll)
	}
	blobs, err := api.NewBlobs(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return err
	}
	srv := api.New(api.Options{Store: st, Blobs: blobs, AdminTokenHash: adminHash, EnrollKeyHash: enrollHash, Log: cfg.Log, RequiredRepeatWindow: cfg.RequiredRepeatWindow})
	mux := http.NewServeMux()
	srv.Register(mux)
	web.New(srv, cfg.TLSCert != "").Register(mux)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "central: listening on %s://%s\n", scheme, ln.Addr())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- hs.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	return nil
}

// GCPercent is the garbage collector target Central runs with unless the
// GOGC environment variable says otherwise. Central's heap is small and
// every request allocates a little (JSON, HTTP), so at Go's default of 100
// it collects very often and each cycle shows in the decision latency
// tail; 400 trades a few MiB of heap for a p99 that stays under 5 ms on a
// busy 2-core machine (docs/BENCHMARKS.md, section Central).
const GCPercent = 400

// TuneGC applies GCPercent when GOGC is not set. Run calls it; anything
// that serves Central's API in-process (the benchmark) calls it too.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
