package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// serveTFTP runs `peerboot tftp serve` with args until the test ends and
// returns its address once it listens.
func serveTFTP(t *testing.T, root string, args ...string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() {
		done <- runTFTP(ctx, append([]string{"serve", "--root", root, "--listen", addr}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tftp serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("tftp serve did not stop")
		}
	})
	line := make([]byte, 256)
	n, err := pr.Read(line)
	if err != nil || !strings.Contains(string(line[:n]), "serving") {
		t.Fatalf("tftp serve did not start: %q %v", line[:n], err)
	}
	go io.Copy(io.Discard, pr)
	return addr
}

// TestTFTPServeAllowWrite uploads with the tftp-hpa client: refused with
// ERROR 2 by default, stored under the root with --allow-write, and read
// back with `peerboot tftp get`.
func TestTFTPServeAllowWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "local.bin")
	data := bytes.Repeat([]byte("peerboot upload "), 4000)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	put := func(addr string) string {
		host, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command("tftp", "-m", "binary", host, port, "-c", "put", src, "stored.bin").CombinedOutput()
		if err != nil {
			t.Fatalf("tftp-hpa put: %v: %s", err, out)
		}
		return string(out) // tftp-hpa prints the server's ERROR and still exits 0
	}

	roRoot := t.TempDir()
	if out := put(serveTFTP(t, roRoot)); !strings.Contains(out, "Error code 2") {
		t.Fatalf("upload without --allow-write: %q, want ERROR 2", out)
	}
	if _, err := os.Stat(filepath.Join(roRoot, "stored.bin")); !os.IsNotExist(err) {
		t.Fatalf("refused upload was stored: %v", err)
	}

	rwRoot := t.TempDir()
	addr := serveTFTP(t, rwRoot, "--allow-write", "--max-upload-size", "1000000")
	if out := put(addr); out != "" {
		t.Fatalf("upload with --allow-write: %q", out)
	}
	stored, err := os.ReadFile(filepath.Join(rwRoot, "stored.bin"))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored file: %d bytes, %v; want the %d uploaded bytes", len(stored), err, len(data))
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	var stdout bytes.Buffer
	if err := runTFTP(context.Background(), []string{"get", "tftp://" + addr + "/stored.bin", back}, &stdout, io.Discard); err != nil {
		t.Fatalf("tftp get: %v", err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) || !strings.Contains(stdout.String(), fmt.Sprintf("received %d bytes", len(data))) {
		t.Fatalf("tftp get printed %q and wrote %d bytes", stdout.String(), len(got))
	}
}
