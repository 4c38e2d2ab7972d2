package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/peerboot/peerboot/tftp"
	"github.com/peerboot/peerboot/tftp/client"
)

func init() {
	register(command{name: "tftp", summary: "TFTP server and client (tftp serve | tftp get)", run: runTFTP})
}

func runTFTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: tftp needs a subcommand: serve or get", errUsage)
	}
	switch args[0] {
	case "serve":
		return runTFTPServe(ctx, args[1:], stdout, stderr)
	case "get":
		return runTFTPGet(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown tftp subcommand %q (want serve or get)", errUsage, args[0])
}

func runTFTPServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tftp serve", stderr)
	root := fs.String("root", "", "directory to serve (required)")
	listen := fs.String("listen", ":69", "UDP address to listen on")
	maxBlksize := fs.Int("max-blksize", 65464, "largest blksize granted (also clamped to path MTU - 32)")
	maxWindow := fs.Int("max-windowsize", 64, "largest windowsize granted")
	maxSessions := fs.Int("max-sessions", 4096, "concurrent transfers before answering \"server busy\"")
	timeout := fs.Duration("timeout", time.Second, "retransmission timeout when the client asks for none")
	retries := fs.Int("retries", 5, "retransmissions without progress before a transfer is abandoned")
	singlePort := fs.Bool("single-port", false, "answer from the listening port (NAT, containers)")
	caseSensitive := fs.Bool("case-sensitive", false, "disable the case-insensitive file lookup")
	allowWrite := fs.Bool("allow-write", false, "accept write requests: new files only, under the root (default: refused with ERROR 2)")
	maxUpload := fs.Int64("max-upload-size", 64<<20, "largest file a write request may store, in bytes")
	blocking := fs.Int("blocking-sessions", 0, "transfers that wait for ACKs in a blocking read on a thread of their own (0: GOMAXPROCS, -1: none)")
	linger := fs.Duration("file-linger", 0, "keep a file open and mapped this long after its last transfer (0: 30s, negative: close at once)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *root == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: tftp serve --root DIR [--listen ADDR:PORT]", errUsage)
	}
	src, err := tftp.NewDirSource(*root)
	if err != nil {
		return err
	}
	defer src.Close()
	src.CaseSensitive = *caseSensitive
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := tftp.Config{Source: src, MaxBlksize: *maxBlksize, MaxWindowsize: *maxWindow,
		MaxSessions: *maxSessions, Timeout: *timeout, Retries: *retries, SinglePort: *singlePort, Logger: logger,
		MaxUploadSize: *maxUpload, BlockingSessions: *blocking, FileLinger: *linger}
	if *allowWrite {
		cfg.Uploads = src
	}
	srv, err := tftp.New(cfg)
	if err != nil {
		return err
	}
	conn, err := tftp.Listen(*listen)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(stdout, "serving %s on %s\n", *root, conn.LocalAddr())
	return srv.Serve(ctx, conn)
}

func runTFTPGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tftp get", stderr)
	blksize := fs.Int("blksize", 1468, "blksize to ask for (0: do not ask)")
	window := fs.Int("windowsize", 16, "windowsize to ask for (0: do not ask)")
	timeout := fs.Duration("timeout", time.Second, "retransmission timeout")
	noTsize := fs.Bool("no-tsize", false, "do not ask for the transfer size")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: tftp get [--blksize N] [--windowsize N] tftp://ADDR:PORT/PATH OUTFILE", errUsage)
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || u.Scheme != "tftp" || u.Host == "" || len(u.Path) < 2 {
		return fmt.Errorf("%w: %q is not a tftp://HOST[:PORT]/PATH URL", errUsage, fs.Arg(0))
	}
	host := u.Host
	if u.Port() == "" {
		host += ":69"
	}
	out, err := os.Create(fs.Arg(1))
	if err != nil {
		return err
	}
	res, err := client.Get(ctx, host, u.Path[1:], out, client.Options{Blksize: *blksize, Windowsize: *window,
		Tsize: !*noTsize, Timeout: *timeout})
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("get %s: %w", fs.Arg(0), err))
	}
	secs := res.Duration.Seconds()
	fmt.Fprintf(stdout, "negotiated: oack=%v blksize=%d windowsize=%d tsize=%d\n", res.OACK, res.Blksize, res.Windowsize, res.Tsize)
	fmt.Fprintf(stdout, "received %d bytes in %.3fs: %.1f MB/s\n", res.Bytes, secs, float64(res.Bytes)/secs/1e6)
	return nil
}
