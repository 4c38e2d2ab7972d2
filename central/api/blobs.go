package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Blobs stores boot image files content-addressed by SHA-256 under a
// directory: <dir>/<first two hex digits>/<digest>.
type Blobs struct{ dir string }

// NewBlobs returns a blob store in dir, creating it.
func NewBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

func (b *Blobs) path(sum string) string { return filepath.Join(b.dir, sum[:2], sum) }

// Put stores r's content. When want is not empty the content must hash to
// it. It returns the digest and size.
func (b *Blobs) Put(r io.Reader, want string) (string, int64, error) {
	tmp, err := os.CreateTemp(b.dir, ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("blobs: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", n, fmt.Errorf("blobs: write: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return sum, n, badField("sha256", "content hashes to %s, not %s", sum, want)
	}
	if err := os.MkdirAll(filepath.Dir(b.path(sum)), 0o755); err != nil {
		return "", n, fmt.Errorf("blobs: %w", err)
	}
	if err := os.Rename(tmp.Name(), b.path(sum)); err != nil {
		return "", n, fmt.Errorf("blobs: %w", err)
	}
	return sum, n, nil
}

// Stat returns the size of a stored blob, or false.
func (b *Blobs) Stat(sum string) (int64, bool) {
	fi, err := os.Stat(b.path(sum))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// Open opens a stored blob.
func (b *Blobs) Open(sum string) (*os.File, error) {
	f, err := os.Open(b.path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errStatus(404, "blob %s not found", sum)
	}
	return f, err
}
