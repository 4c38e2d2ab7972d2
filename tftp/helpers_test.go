package tftp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testFile is one file in a test root, with its content hash.
type testFile struct {
	name string
	size int64
	sum  string
}

func writeRandomFile(t testing.TB, dir, name string, size int64) testFile {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	r := rand.New(rand.NewPCG(uint64(size), 42))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int(min(left, int64(len(buf))))
		for i := 0; i < n; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		f.Write(buf[:n])
		h.Write(buf[:n])
		left -= int64(n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	return testFile{name: name, size: size, sum: hex.EncodeToString(h.Sum(nil))}
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("download output: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// statsLog collects the transfer statistics of a test server.
type statsLog struct {
	mu  sync.Mutex
	all []TransferStats
	ch  chan TransferStats
}

func (l *statsLog) add(s TransferStats) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.ch <- s:
	default:
	}
}

// startServer serves root on 127.0.0.1 (a free port) until the test ends.
func startServer(t testing.TB, root string, mod func(*Config)) (*Server, string, *statsLog) {
	t.Helper()
	src, err := NewDirSource(root)
	if err != nil {
		t.Fatal(err)
	}
	st := &statsLog{ch: make(chan TransferStats, 1024)}
	cfg := Config{Source: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnTransfer: st.add}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not stop after cancel")
		}
		conn.Close()
		src.Close()
	})
	return srv, conn.LocalAddr().String(), st
}
