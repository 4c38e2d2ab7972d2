package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/client"
)

// optsWindow16 is a request for blksize 1468 and windowsize 16.
var optsWindow16 = func() codec.Options {
	var o codec.Options
	o.SetBlksize(1468)
	o.SetWindowsize(16)
	return o
}()

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// getSHA downloads name at 1468 x 16 and returns the sha256 of what
// arrived.
func getSHA(t *testing.T, addr, name string, poller bool) string {
	t.Helper()
	var buf bytes.Buffer
	res, err := client.Get(context.Background(), addr, name, &buf,
		client.Options{Blksize: 1468, Windowsize: 16, Tsize: true, Dally: -1, Poller: poller})
	if err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	if res.Bytes != int64(buf.Len()) {
		t.Fatalf("download %s: result says %d bytes, %d written", name, res.Bytes, buf.Len())
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// TestBlockingSessionsLimit: up to BlockingSessions read transfers run on
// a blocking socket, the rest on the poller; a slot is free again when its
// transfer ends.
func TestBlockingSessionsLimit(t *testing.T) {
	root := t.TempDir()
	writeRandomFile(t, root, "a.bin", 100<<10)
	first, _ := newTestSession(t, root, "a.bin", 1468, 16, 0, true) // BlockingSessions = 1
	local := first.localAddr().Addr()
	second, err := first.srv.newSession(context.Background(), nil, first.peer, local, "a.bin", first.file, nil, &optsWindow16)
	if err != nil || second == nil {
		t.Fatalf("second session: %v", err)
	}
	if second.sock != nil || second.conn == nil {
		t.Fatal("a second session took a blocking socket beyond BlockingSessions=1")
	}
	second.closeConn()
	first.closeConn()
	if n := first.srv.blocking.Taken(); n != 0 {
		t.Fatalf("%d blocking slots held after both sessions closed", n)
	}
	third, err := first.srv.newSession(context.Background(), nil, first.peer, local, "a.bin", first.file, nil, &optsWindow16)
	if err != nil || third == nil {
		t.Fatalf("third session: %v", err)
	}
	defer third.closeConn()
	if third.sock == nil {
		t.Fatal("the freed blocking slot was not reused")
	}
}

// TestMixedTransportsDownload runs concurrent downloads against a server
// with one blocking slot, with clients on both of their transports: every
// file arrives intact and the slot is released.
func TestMixedTransportsDownload(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(t, root, "mixed.bin", 4<<20+123)
	srv, addr, st := startServer(t, root, func(c *Config) { c.BlockingSessions = 1 })
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(poller bool) {
			defer wg.Done()
			var buf bytes.Buffer
			_, err := client.Get(context.Background(), addr, f.name, &buf,
				client.Options{Blksize: 1468, Windowsize: 16, Tsize: true, Dally: -1, Poller: poller})
			if err == nil {
				if sum := sha256.Sum256(buf.Bytes()); hex.EncodeToString(sum[:]) != f.sum {
					err = errors.New("sha256 mismatch")
				}
			}
			errs <- err
		}(i%2 == 0)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		if s := waitStats(t, st, f.name); s.Outcome != OutcomeComplete {
			t.Fatalf("transfer %d: %+v", i, s)
		}
	}
	if n := srv.blocking.Taken(); n != 0 {
		t.Fatalf("%d blocking slots held after every transfer ended", n)
	}
}

// TestFileLinger: a file stays open and mapped after its transfer and is
// reused by the next request for it, unless it was replaced or changed on
// disk; it is closed after FileLinger, and when the server stops.
func TestFileLinger(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(t, root, "boot.img", 1<<20+7)
	src, err := NewDirSource(root)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st := &statsLog{ch: make(chan TransferStats, 16)}
	srv, err := New(Config{Source: src, OnTransfer: st.add, FileLinger: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	defer func() {
		cancel()
		<-done
	}()
	addr := conn.LocalAddr().String()
	cached := func() *sharedFile {
		waitReleased(t, srv)
		srv.files.mu.Lock()
		defer srv.files.mu.Unlock()
		return srv.files.m[f.name]
	}

	if got := getSHA(t, addr, f.name, false); got != f.sum {
		t.Fatal("first download: sha256 mismatch")
	}
	waitStats(t, st, f.name)
	kept := cached()
	if kept == nil || kept.closed.Load() || kept.data == nil {
		t.Fatalf("after the transfer the file is not kept open and mapped: %+v", kept)
	}
	if got := getSHA(t, addr, f.name, true); got != f.sum {
		t.Fatal("second download: sha256 mismatch")
	}
	waitStats(t, st, f.name)
	if cached() != kept {
		t.Fatal("the second request opened and mapped the file again")
	}

	// Replaced (a new inode under the name): served fresh.
	tmp := writeRandomFile(t, root, "boot.img.new", 1<<20+7+1)
	if err := os.Rename(filepath.Join(root, tmp.name), filepath.Join(root, f.name)); err != nil {
		t.Fatal(err)
	}
	if got := getSHA(t, addr, f.name, false); got != tmp.sum {
		t.Fatal("after the file was replaced the old content was served")
	}
	waitStats(t, st, f.name)
	if c := cached(); c == kept || c == nil {
		t.Fatal("the replaced file's entry was not renewed")
	}
	if !kept.closed.Load() {
		t.Fatal("the replaced file's lingering mapping was not closed")
	}

	// Rewritten in place at the same size: the lingering mapping is
	// reused (the page cache it shares holds the new bytes).
	kept = cached()
	otherDir := t.TempDir()
	other := writeRandomFile(t, otherDir, "other.bin", tmp.size)
	otherBytes, err := os.ReadFile(filepath.Join(otherDir, other.name))
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(filepath.Join(root, f.name), os.O_WRONLY, 0) // no truncation: same inode, same size
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(otherBytes, 0); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if got := getSHA(t, addr, f.name, false); got != other.sum {
		t.Fatal("after the file was rewritten in place the old content was served")
	}
	waitStats(t, st, f.name)
	if cached() != kept {
		t.Fatal("a file rewritten in place at the same size was opened and mapped again")
	}

	// Grown in place (same inode, new size): served fresh.
	fh, err = os.OpenFile(filepath.Join(root, f.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte("appended"))
	fh.Close()
	want, _ := os.ReadFile(filepath.Join(root, f.name))
	sum := sha256.Sum256(want)
	if got := getSHA(t, addr, f.name, false); got != hex.EncodeToString(sum[:]) {
		t.Fatal("after the file grew in place the old content was served")
	}
	waitStats(t, st, f.name)
	if cached() == kept {
		t.Fatal("the grown file's entry was not renewed")
	}

	// Removed: the request fails although a mapping lingers.
	os.Remove(filepath.Join(root, f.name))
	var ignored bytes.Buffer
	_, err = client.Get(context.Background(), addr, f.name, &ignored, client.Options{Dally: -1})
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != 1 {
		t.Fatalf("download of a removed file: %v, want ERROR 1", err)
	}

	// The lingering entry of the removed file holds its disk space until
	// CloseRemovedFiles closes it.
	lingering := cached()
	if lingering == nil || lingering.closed.Load() {
		t.Fatal("the removed file's entry did not linger")
	}
	if n := srv.CloseRemovedFiles(); n != 1 {
		t.Fatalf("CloseRemovedFiles closed %d files, want 1", n)
	}
	if !lingering.closed.Load() || cached() != nil {
		t.Fatal("CloseRemovedFiles left the removed file open")
	}
	if n := srv.CloseRemovedFiles(); n != 0 {
		t.Fatalf("a second CloseRemovedFiles closed %d files, want 0", n)
	}

	// The server stops: lingering files are closed.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	srv.files.mu.Lock()
	n := len(srv.files.m)
	srv.files.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d files still open after the server stopped", n)
	}
}

// TestFileLingerExpiresAndIsBounded: an unused file is closed after
// FileLinger, and no more than maxIdleFiles unused files stay open.
func TestFileLingerExpiresAndIsBounded(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	names := make([]testFile, maxIdleFiles+3)
	for i := range names {
		names[i] = writeRandomFile(t, root, fmt.Sprintf("f%03d.bin", i), int64(100+i))
	}
	srv, addr, st := startServer(t, root, func(c *Config) { c.FileLinger = time.Hour })
	for _, f := range names {
		if got := getSHA(t, addr, f.name, false); got != f.sum {
			t.Fatalf("%s: sha256 mismatch", f.name)
		}
		waitStats(t, st, f.name)
	}
	waitReleased(t, srv)
	srv.files.mu.Lock()
	open, idle := len(srv.files.m), srv.files.idle
	_, oldest := srv.files.m[names[0].name]
	srv.files.mu.Unlock()
	if open != maxIdleFiles || idle != maxIdleFiles || oldest {
		t.Fatalf("%d files open (%d idle, oldest kept: %v), want the %d most recent", open, idle, oldest, maxIdleFiles)
	}

	srv2, addr2, st2 := startServer(t, root, func(c *Config) { c.FileLinger = 20 * time.Millisecond })
	if got := getSHA(t, addr2, names[0].name, false); got != names[0].sum {
		t.Fatal("sha256 mismatch")
	}
	waitStats(t, st2, names[0].name)
	for i := 0; ; i++ {
		srv2.files.mu.Lock()
		n := len(srv2.files.m)
		srv2.files.mu.Unlock()
		if n == 0 {
			break
		}
		if i == 500 {
			t.Fatal("an unused file was still open 5 s after a 20 ms FileLinger")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeOnWrite removes path when the first bytes of a download arrive.
type removeOnWrite struct {
	path    string
	removed bool
	h       io.Writer
}

func (w *removeOnWrite) Write(p []byte) (int, error) {
	if !w.removed {
		w.removed = true
		if err := os.Remove(w.path); err != nil {
			return 0, err
		}
	}
	return w.h.Write(p)
}

// TestFileRemovedDuringTransfer: a file removed from disk while a transfer
// reads it is still served whole, and is closed (its space freed) when that
// transfer ends instead of lingering.
func TestFileRemovedDuringTransfer(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(t, root, "evicted.img", 4<<20+3)
	keep := writeRandomFile(t, root, "kept.img", 1<<20)
	srv, addr, st := startServer(t, root, func(c *Config) { c.FileLinger = time.Hour })

	h := sha256.New()
	w := &removeOnWrite{path: filepath.Join(root, f.name), h: h}
	res, err := client.Get(context.Background(), addr, f.name, w, client.Options{Blksize: 1468, Windowsize: 16, Dally: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !w.removed || res.Bytes != f.size || hex.EncodeToString(h.Sum(nil)) != f.sum {
		t.Fatalf("removed=%v, %d bytes, sha256 match %v: want the whole file", w.removed, res.Bytes, hex.EncodeToString(h.Sum(nil)) == f.sum)
	}
	if s := waitStats(t, st, f.name); s.Outcome != OutcomeComplete {
		t.Fatalf("transfer: %+v", s)
	}
	if got := getSHA(t, addr, keep.name, false); got != keep.sum {
		t.Fatal("kept file: sha256 mismatch")
	}
	waitStats(t, st, keep.name)
	waitReleased(t, srv)
	srv.files.mu.Lock()
	_, removedOpen := srv.files.m[f.name]
	_, keptOpen := srv.files.m[keep.name]
	srv.files.mu.Unlock()
	if removedOpen || !keptOpen {
		t.Fatalf("after the transfers: removed file still open %v, kept file lingering %v; want false, true", removedOpen, keptOpen)
	}
}

// waitReleased waits (bounded) until no transfer holds a file of srv: a
// session releases its file just after its statistics are reported.
func waitReleased(t *testing.T, srv *Server) {
	t.Helper()
	for i := 0; i < 500; i++ {
		srv.files.mu.Lock()
		busy := 0
		for _, f := range srv.files.m {
			busy += f.refs
		}
		srv.files.mu.Unlock()
		if busy == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("a finished transfer still holds its file after 5 s")
}

// TestClientCancelBothTransports: a canceled download returns promptly on
// either client transport while the server is silent.
func TestClientCancelBothTransports(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, poller := range []bool{false, true} {
		t.Run(fmt.Sprintf("poller=%v", poller), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			var out bytes.Buffer
			go func() {
				_, err := client.Get(ctx, silent.LocalAddr().String(), "x", &out,
					client.Options{Timeout: 10 * time.Second, Poller: poller})
				errc <- err
			}()
			buf := make([]byte, 600)
			silent.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := silent.ReadFromUDP(buf); err != nil { // the request arrived: the client waits
				t.Fatal(err)
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("canceled download returned %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("canceled download still waiting after 2 s")
			}
		})
	}
}
