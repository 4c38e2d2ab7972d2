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

	codec "github.com/peerboot/peerboot/codec/tftp"
)

type realUploader struct {
	name string
	// put uploads the local file src to remote name on addr.
	put func(ctx context.Context, addr, src, name string) error
	// window is the windowsize the client asks for (1: none).
	window int
}

var realUploaders = []realUploader{
	{"atftp", func(ctx context.Context, addr, src, name string) error {
		host, port, _ := strings.Cut(addr, ":")
		return runTool(ctx, "atftp", "--option", "windowsize 8", "--option", "blksize 1468",
			"--option", "tsize 0", "-p", "-l", src, "-r", name, host, port)
	}, 8},
	{"tftp-hpa", func(ctx context.Context, addr, src, name string) error {
		host, port, _ := strings.Cut(addr, ":")
		// tftp-hpa exits 0 after an ERROR from the server; it prints it.
		out, err := exec.CommandContext(ctx, "tftp", "-m", "binary", host, port, "-c", "put", src, name).CombinedOutput()
		if err == nil && len(out) > 0 {
			err = fmt.Errorf("tftp-hpa: %s", out)
		}
		return err
	}, 1},
}

// TestUploadsRealClients has atftp (blksize, windowsize, tsize) and the
// tftp-hpa client (plain RFC 1350) upload new files when writes are
// enabled; each arrives intact under the root, nothing is left behind, an
// existing name is refused with ERROR 6 and an oversized one with ERROR 3.
func TestUploadsRealClients(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o777) // atftp and tftp-hpa run as root; the server writes as root too
	os.Mkdir(filepath.Join(root, "up"), 0o755)
	srcDir := t.TempDir()
	var files []testFile
	for _, sz := range []int64{0, 511, 512, 1468 * 8, 300000} {
		files = append(files, writeRandomFile(t, srcDir, fmt.Sprintf("u%d.bin", sz), sz))
	}
	big := writeRandomFile(t, srcDir, "big.bin", 200000)
	src := func(f testFile) string { return filepath.Join(srcDir, f.name) }
	_, addr, stats := startServer(t, root, func(c *Config) {
		c.Uploads = c.Source.(*DirSource)
		c.MaxUploadSize = 150000
		c.Timeout = 300 * time.Millisecond
	})
	for _, c := range realUploaders {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, f := range files {
				if f.size > 150000 {
					continue
				}
				remote := "up/" + c.name + "-" + f.name
				if err := c.put(ctx, addr, src(f), remote); err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				st := waitStats(t, stats, remote)
				if st.Outcome != OutcomeComplete || !st.Upload || st.Bytes != f.size {
					t.Fatalf("%s: stats %+v", f.name, st)
				}
				if st.Windowsize != c.window || (c.window > 1 && st.Blksize != 1468) {
					t.Fatalf("%s: negotiated %dx%d, want windowsize %d", f.name, st.Blksize, st.Windowsize, c.window)
				}
				if got := fileSHA256(t, filepath.Join(root, remote)); got != f.sum {
					t.Fatalf("%s: stored sha256 %s, want %s", f.name, got, f.sum)
				}
			}
			// The same name again: refused, the stored file untouched.
			again := "up/" + c.name + "-" + files[1].name
			err := c.put(ctx, addr, src(files[2]), again)
			if err == nil || fileSHA256(t, filepath.Join(root, again)) != files[1].sum {
				t.Fatalf("second upload to %s: err %v; the stored file must stay as it was", again, err)
			}
			// Too large: stopped with ERROR 3 and discarded.
			tooBig := "up/" + c.name + "-big.bin"
			if err := c.put(ctx, addr, src(big), tooBig); err == nil {
				t.Fatalf("upload of %d bytes over a 150000-byte limit succeeded", big.size)
			}
			if _, err := os.Stat(filepath.Join(root, tooBig)); !os.IsNotExist(err) {
				t.Fatalf("oversized upload left %s: %v", tooBig, err)
			}
		})
	}
	ents, _ := os.ReadDir(filepath.Join(root, "up"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), uploadPrefix) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func waitStats(t *testing.T, l *statsLog, file string) TransferStats {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case st := <-l.ch:
			if st.File == file {
				return st
			}
		case <-deadline:
			t.Fatalf("no transfer statistics for %s", file)
		}
	}
}

// TestUploadRefusals checks the protocol answers of write requests: refused
// with ERROR 2 unless enabled, ERROR 6 for an existing name, ERROR 3 for a
// tsize over the limit, ERROR 1 for a missing directory, ERROR 2 for names
// leaving the root, and the OACK for blksize/windowsize/tsize.
func TestUploadRefusals(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	writeRandomFile(t, root, "exists.bin", 10)
	wrq := func(name string, opts ...string) []byte {
		p := rrq(name, "octet")
		p[1] = byte(codec.OpWRQ)
		for _, o := range opts {
			p = append(append(p, o...), 0)
		}
		return p
	}
	_, roAddr, _ := startServer(t, root, nil)
	_, rwAddr, _ := startServer(t, root, func(c *Config) {
		c.Uploads = c.Source.(*DirSource)
		c.MaxUploadSize = 1 << 20
		c.Timeout = 100 * time.Millisecond
		c.Retries = 1
	})
	cases := []struct {
		name, addr string
		pkt        []byte
		code       codec.ErrorCode
	}{
		{"writes disabled", roAddr, wrq("new.bin"), codec.ErrCodeAccessViolation},
		{"existing file", rwAddr, wrq("exists.bin"), codec.ErrCodeFileExists},
		{"tsize over limit", rwAddr, wrq("new.bin", "tsize", "2000000"), codec.ErrCodeDiskFull},
		{"missing directory", rwAddr, wrq("nodir/new.bin"), codec.ErrCodeFileNotFound},
		{"dotdot", rwAddr, wrq("../escape.bin"), codec.ErrCodeAccessViolation},
		{"reserved temporary name", rwAddr, wrq(uploadPrefix + "x"), codec.ErrCodeAccessViolation},
		{"netascii", rwAddr, append(wrq("n.bin")[:0:0], "\x00\x02n.bin\x00netascii\x00"...), codec.ErrCodeIllegalOperation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := rawRequest(t, tc.addr, tc.pkt, 2*time.Second)
			e, err := codec.ParseError(reply)
			if err != nil || e.Code != tc.code {
				t.Fatalf("reply %q (%v), want ERROR %d", reply, err, tc.code)
			}
		})
	}
	// Accepted: the OACK carries the options, then nothing is stored when
	// the client goes silent.
	reply := rawRequest(t, rwAddr, wrq("silent.bin", "blksize", "1468", "windowsize", "4", "tsize", "5000"), 2*time.Second)
	var o codec.Options
	if err := codec.ParseOACK(reply, &o); err != nil || o.Blksize != 1468 || o.Windowsize != 4 || o.Tsize != 5000 {
		t.Fatalf("OACK %q (%v): %+v", reply, err, o)
	}
	for i := 0; ; i++ {
		ents, _ := os.ReadDir(root)
		if len(ents) == 1 {
			break
		}
		if i == 500 {
			t.Fatalf("abandoned upload left %d entries in the root", len(ents))
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a bound
	}
	if _, err := os.Stat(filepath.Join(root, "silent.bin")); !os.IsNotExist(err) {
		t.Fatalf("abandoned upload stored: %v", err)
	}
}

// TestUploadSinglePort uploads through the listening port only: DATA
// packets larger than an ACK travel through the session's inbox.
func TestUploadSinglePort(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o777)
	srcDir := t.TempDir()
	f := writeRandomFile(t, srcDir, "sp-up.bin", 200000)
	_, addr, stats := startServer(t, root, func(c *Config) {
		c.Uploads = c.Source.(*DirSource)
		c.SinglePort = true
		c.Timeout = 300 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	atftp := realUploaders[0] // blksize 1468, windowsize 8
	if err := atftp.put(ctx, addr, filepath.Join(srcDir, f.name), f.name); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, stats, f.name)
	if st.Outcome != OutcomeComplete || st.Bytes != f.size || st.Blksize != 1468 || st.Windowsize != 8 {
		t.Fatalf("stats %+v", st)
	}
	if got := fileSHA256(t, filepath.Join(root, f.name)); got != f.sum {
		t.Fatalf("stored sha256 %s, want %s", got, f.sum)
	}
}
