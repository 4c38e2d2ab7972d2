package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/peerboot/peerboot/central"
)

func init() {
	register(command{name: "central", summary: "run Central: deployments, boot images, agents and events over HTTP", run: runCentral})
}

func runCentral(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("central", stderr)
	var cfg central.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "`ADDR:PORT` to serve HTTP(S) on")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "`DIR` for the SQLite database and boot image files (required)")
	fs.StringVar(&cfg.DB, "db", "", "`postgres://...` URL to use PostgreSQL instead of SQLite")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file`: serve HTTPS")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.DurationVar(&cfg.RequiredRepeatWindow, "required-repeat-window", time.Minute, "a repeat request within this time after a required deployment was handed out is the same boot and gets it again")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments: %v", errUsage, fs.Args())
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: --data-dir is required", errUsage)
	}
	return central.Run(ctx, cfg, stdout)
}
