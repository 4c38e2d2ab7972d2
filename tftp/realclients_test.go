package tftp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"

	"github.com/peerboot/peerboot/tftp/client"
)

// rolloverSize needs more than 65535 blocks of 512 bytes, so block numbers
// wrap to 0 during the download.
const rolloverSize = 65536*512 + 1000

type realClient struct {
	name string
	// get downloads name from addr into out with the given blksize.
	get func(ctx context.Context, addr, name, out string, blksize int) error
}

func runTool(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

var realClients = []realClient{
	{"atftp", func(ctx context.Context, addr, name, out string, blksize int) error {
		host, port, _ := strings.Cut(addr, ":")
		return runTool(ctx, "atftp", "--option", "windowsize 16", "--option", fmt.Sprintf("blksize %d", blksize),
			"--option", "tsize 0", "-g", "-r", name, "-l", out, host, port)
	}},
	{"tftp-hpa", func(ctx context.Context, addr, name, out string, _ int) error {
		host, port, _ := strings.Cut(addr, ":")
		// tftp-hpa asks for no options: 512-byte lock-step.
		if err := runTool(ctx, "tftp", "-m", "binary", host, port, "-c", "get", name, out); err != nil {
			return err
		}
		if _, err := os.Stat(out); err != nil {
			return fmt.Errorf("tftp-hpa wrote no file: %w", err)
		}
		return nil
	}},
	{"curl", func(ctx context.Context, addr, name, out string, blksize int) error {
		if blksize == 1468 {
			blksize = 8192
		}
		if err := runTool(ctx, "curl", "-sS", "--fail", "--tftp-blksize", fmt.Sprint(blksize), "-o", out, "tftp://"+addr+"/"+name); err != nil {
			return err
		}
		if _, err := os.Stat(out); os.IsNotExist(err) {
			// curl creates its output file only when data arrives.
			return os.WriteFile(out, nil, 0o644)
		}
		return nil
	}},
	{"pin-tftp", func(ctx context.Context, addr, name, out string, blksize int) error {
		c, err := pintftp.NewClient(addr)
		if err != nil {
			return err
		}
		c.SetBlockSize(blksize)
		c.RequestTSize(true)
		c.SetTimeout(2 * time.Second)
		wt, err := c.Receive(name, "octet")
		if err != nil {
			return err
		}
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if _, err := wt.WriteTo(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}},
	{"peerboot-client", func(ctx context.Context, addr, name, out string, blksize int) error {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		_, err = client.Get(ctx, addr, name, f, client.Options{Blksize: blksize, Windowsize: 16, Tsize: true})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}},
}

// TestRealClientsDownload has every client fetch files around the block
// boundaries, exact multiples of the block sizes, 1 MiB and a file whose
// block numbers roll over, each checked by sha256.
func TestRealClientsDownload(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	var files []testFile
	for _, sz := range []int64{0, 1, 511, 512, 513, 1468 * 3, 8192 * 2, 1 << 20} {
		files = append(files, writeRandomFile(t, root, fmt.Sprintf("f%d.bin", sz), sz))
	}
	roll := writeRandomFile(t, root, "rollover.bin", rolloverSize)
	srv, addr, stats := startServer(t, root, nil)
	out := t.TempDir()
	for _, c := range realClients {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			for _, f := range files {
				if c.name == "curl" && f.size == 0 {
					// curl 7.88 fails every empty TFTP download with "(71)
					// getpeername() failed" whatever the server (tftpd-hpa
					// too); the other clients cover the empty file.
					continue
				}
				dst := filepath.Join(out, c.name+"-"+f.name)
				if err := c.get(ctx, addr, f.name, dst, 1468); err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if got := fileSHA256(t, dst); got != f.sum {
					t.Fatalf("%s: sha256 %s, want %s", f.name, got, f.sum)
				}
			}
			dst := filepath.Join(out, c.name+"-rollover")
			if err := c.get(ctx, addr, roll.name, dst, 512); err != nil {
				t.Fatalf("rollover: %v", err)
			}
			if got := fileSHA256(t, dst); got != roll.sum {
				t.Fatalf("rollover file: sha256 %s, want %s", got, roll.sum)
			}
			os.Remove(dst)
		})
	}
	// The statistics callback saw the rollover transfers complete.
	stats.mu.Lock()
	defer stats.mu.Unlock()
	rolled := 0
	for _, s := range stats.all {
		if s.File == roll.name && s.Outcome == OutcomeComplete && s.Bytes == roll.size && s.Blksize == 512 {
			rolled++
		}
	}
	if rolled != len(realClients) {
		t.Errorf("%d complete rollover transfers in the statistics, want %d", rolled, len(realClients))
	}
	if c, want := srv.Counters(), uint64(len(realClients)*(len(files)+1)-1); c.Completed != want {
		t.Errorf("server counted %d completed transfers, want %d", c.Completed, want)
	}
}
