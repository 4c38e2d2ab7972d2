package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/tftp"
)

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func imageFile(name string, b []byte) model.ImageFile {
	s := sha256.Sum256(b)
	return model.ImageFile{Name: name, Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

// blobServer serves blobs with range support. While cut is set, each
// response stops after that many bytes and the connection is dropped,
// as when Central or the link goes away mid-download.
type blobServer struct {
	blobs    map[string][]byte
	cut      atomic.Int64
	requests atomic.Int64
	ranged   atomic.Int64
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	sum := strings.TrimPrefix(r.URL.Path, "/api/v1/blobs/")
	data, ok := b.blobs[sum]
	if !ok {
		http.Error(w, `{"error":"no such blob"}`, 404)
		return
	}
	if r.Header.Get("Range") != "" {
		b.ranged.Add(1)
	}
	if n := b.cut.Load(); n > 0 {
		w.Header().Set("Content-Length", "999999999")
		w.WriteHeader(200)
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func TestSyncResumesVerifiesAndServesOnlyWholeFiles(t *testing.T) {
	big, small := content(3<<20, 1), content(70000, 2)
	fb, fs := imageFile("bootx64.efi", big), imageFile("undionly.kpxe", small)
	srv := &blobServer{blobs: map[string][]byte{fb.SHA256: big, fs.SHA256: small}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cl := client.New(hs.URL, "tok", nil)
	cl.Retries = 0

	c, err := Open(t.TempDir(), 64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetImages([]model.Image{{ID: "win-x64", Arch: model.ArchX64, Files: []model.ImageFile{fb, fs}}})
	if _, err := c.Open("win-x64/bootx64.efi"); !errors.Is(err, tftp.ErrNotFound) {
		t.Fatalf("open before sync: %v, want not found", err)
	}
	// The first sync breaks after 1 MiB of each file.
	srv.cut.Store(1 << 20)
	if err := c.Sync(context.Background(), cl, nil); err == nil {
		t.Fatal("sync over a broken link reported success")
	}
	if c.Has("win-x64") || len(c.Held()) != 0 {
		t.Fatal("image reported held after a broken download")
	}
	if _, err := c.Open("win-x64/bootx64.efi"); !errors.Is(err, tftp.ErrNotFound) {
		t.Fatalf("partial file served: %v", err)
	}
	// Resume: the next sync asks only for the rest.
	srv.cut.Store(0)
	var last, total int64
	if err := c.Sync(context.Background(), cl, func(d, tot int64, _ string) { last, total = d, tot }); err != nil {
		t.Fatal(err)
	}
	if srv.ranged.Load() == 0 {
		t.Error("second sync did not resume with a range request")
	}
	if last != total || total != int64(len(big)+len(small)) {
		t.Errorf("progress ended at %d/%d", last, total)
	}
	if got := c.Held(); len(got) != 1 || got[0] != "win-x64" {
		t.Fatalf("held = %v", got)
	}
	f, err := c.Open("WIN-X64/BootX64.efi")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, f.Size())
	if _, err := f.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.Equal(got, big) {
		t.Fatal("served bytes differ from the image file")
	}
	// Nothing left to do: a third sync downloads nothing.
	before := srv.requests.Load()
	if err := c.Sync(context.Background(), cl, nil); err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != before {
		t.Error("sync downloaded files already cached")
	}
}

func TestCorruptDownloadIsRejected(t *testing.T) {
	good := content(50000, 3)
	f := imageFile("a.efi", good)
	bad := append([]byte(nil), good...)
	bad[100] ^= 0xff
	srv := &blobServer{blobs: map[string][]byte{f.SHA256: bad}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cl := client.New(hs.URL, "tok", nil)
	cl.Retries = 0
	c, _ := Open(t.TempDir(), 64<<20, nil)
	c.SetImages([]model.Image{{ID: "i", Files: []model.ImageFile{f}}})
	if err := c.Sync(context.Background(), cl, nil); !errors.Is(err, client.ErrChecksum) {
		t.Fatalf("sync of corrupt data: %v, want checksum error", err)
	}
	if _, err := c.Open("i/a.efi"); !errors.Is(err, tftp.ErrNotFound) {
		t.Fatalf("corrupt file served: %v", err)
	}
}

func TestPruneKeepsNeededRemovesOldest(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir, 3<<20, nil)
	write := func(sum string, n int, age time.Duration) {
		p := filepath.Join(dir, "blobs", sum)
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
		ts := time.Now().Add(-age)
		os.Chtimes(p, ts, ts)
	}
	write("needed", 2<<20, 3*time.Hour)
	write("old", 1<<20, 2*time.Hour)
	write("newer", 1<<20, time.Hour)
	c.SetImages([]model.Image{{ID: "n", Files: []model.ImageFile{{Name: "f", SHA256: "needed", Size: 2 << 20}}}})
	if err := c.Prune(); err != nil {
		t.Fatal(err)
	}
	_, errNeeded := os.Stat(filepath.Join(dir, "blobs", "needed"))
	_, errOld := os.Stat(filepath.Join(dir, "blobs", "old"))
	_, errNewer := os.Stat(filepath.Join(dir, "blobs", "newer"))
	if errNeeded != nil || errOld == nil || errNewer != nil {
		t.Fatalf("after prune: needed=%v old=%v newer=%v; want needed and newer kept, old removed", errNeeded, errOld, errNewer)
	}
	if st := c.Stats(); st.Bytes != 3<<20 || st.Files != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestChainFallsThroughOnlyOnNotFound(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "extra.bin"), []byte("hello"), 0o600)
	ds, err := tftp.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	c, _ := Open(t.TempDir(), 1<<20, nil)
	ch := Chain{c, ds}
	f, err := ch.Open("extra.bin")
	if err != nil || f.Size() != 5 {
		t.Fatalf("chain open = %v, %v", f, err)
	}
	f.Close()
	if _, err := ch.Open("missing"); !errors.Is(err, tftp.ErrNotFound) {
		t.Fatalf("missing = %v", err)
	}
}
