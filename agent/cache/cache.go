package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/tftp"
)

// Downloader fetches the blob with a SHA-256 into path: resuming from
// path+".part", verifying the digest, and renaming only when whole.
// central/client.Client implements it.
type Downloader interface {
	Download(ctx context.Context, sum, path string) error
}

// Progress reports a sync: bytes present of the bytes needed.
type Progress func(done, total int64, file string)

// Cache holds boot image files content-addressed under dir/blobs.
type Cache struct {
	dir   string
	limit int64
	log   *slog.Logger

	mu     sync.RWMutex
	files  map[string]model.ImageFile // "<image>/<name>" (lower case) -> file
	images map[string]model.Image

	downloads atomic.Uint64
	failures  atomic.Uint64
}

// Open returns the cache in dir with a size limit in bytes.
func Open(dir string, limit int64, log *slog.Logger) (*Cache, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return &Cache{dir: dir, limit: limit, log: log, files: map[string]model.ImageFile{}, images: map[string]model.Image{}}, nil
}

func key(image, name string) string { return strings.ToLower(image + "/" + name) }

func (c *Cache) blobPath(sum string) string { return filepath.Join(c.dir, "blobs", sum) }

// SetImages declares the images the subnet needs; Open serves their files
// once downloaded.
func (c *Cache) SetImages(imgs []model.Image) {
	files := map[string]model.ImageFile{}
	images := map[string]model.Image{}
	for _, img := range imgs {
		images[img.ID] = img
		for _, f := range img.Files {
			files[key(img.ID, f.Name)] = f
		}
	}
	c.mu.Lock()
	c.files, c.images = files, images
	c.mu.Unlock()
}

// Image returns a needed image by id.
func (c *Cache) Image(id string) (model.Image, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	img, ok := c.images[id]
	return img, ok
}

// present reports whether a whole, right-sized copy of f is cached.
func (c *Cache) present(f model.ImageFile) bool {
	st, err := os.Stat(c.blobPath(f.SHA256))
	return err == nil && st.Mode().IsRegular() && st.Size() == f.Size
}

// Has reports whether every file of an image is cached.
func (c *Cache) Has(id string) bool {
	img, ok := c.Image(id)
	if !ok {
		return false
	}
	for _, f := range img.Files {
		if !c.present(f) {
			return false
		}
	}
	return true
}

// Needed lists the images the subnet needs, sorted.
func (c *Cache) Needed() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := make([]string, 0, len(c.images))
	for id := range c.images {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Held lists the needed images whose files are all cached, sorted.
func (c *Cache) Held() []string {
	c.mu.RLock()
	ids := make([]string, 0, len(c.images))
	for id := range c.images {
		ids = append(ids, id)
	}
	c.mu.RUnlock()
	out := ids[:0]
	for _, id := range ids {
		if c.Has(id) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Sync downloads every missing file of the needed images, reporting
// progress, then prunes. It returns the first download error after trying
// every file.
func (c *Cache) Sync(ctx context.Context, dl Downloader, progress Progress) error {
	c.mu.RLock()
	var need []model.ImageFile
	seen := map[string]bool{}
	var total, done int64
	for _, f := range c.files {
		if seen[f.SHA256] {
			continue
		}
		seen[f.SHA256] = true
		total += f.Size
		if c.present(f) {
			done += f.Size
		} else {
			need = append(need, f)
		}
	}
	c.mu.RUnlock()
	sort.Slice(need, func(i, j int) bool { return need[i].SHA256 < need[j].SHA256 })
	var errs []error
	for _, f := range need {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := c.blobPath(f.SHA256)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if progress != nil {
			progress(done, total, f.Name)
			wg.Add(1)
			go func(base int64) {
				defer wg.Done()
				t := time.NewTicker(100 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if st, err := os.Stat(path + ".part"); err == nil {
							progress(base+min(st.Size(), f.Size), total, f.Name)
						}
					}
				}
			}(done)
		}
		err := dl.Download(ctx, f.SHA256, path)
		close(stop)
		wg.Wait()
		if err == nil {
			err = syncFile(path)
		}
		if err != nil {
			c.failures.Add(1)
			c.log.Warn("image file download failed", "file", f.Name, "sha256", f.SHA256, "err", err)
			errs = append(errs, fmt.Errorf("download %s: %w", f.Name, err))
			continue
		}
		c.downloads.Add(1)
		done += f.Size
		if progress != nil {
			progress(done, total, f.Name)
		}
	}
	if err := c.Prune(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Stats are the cache's counters.
type Stats struct {
	Bytes     int64
	Files     int
	Downloads uint64
	Failures  uint64
}

// Stats returns the cache size and counters.
func (c *Cache) Stats() Stats {
	st := Stats{Downloads: c.downloads.Load(), Failures: c.failures.Load()}
	for _, b := range c.blobs() {
		st.Bytes += b.size
		st.Files++
	}
	return st
}

type blob struct {
	sum   string
	size  int64
	mtime time.Time
}

func (c *Cache) blobs() []blob {
	ents, err := os.ReadDir(filepath.Join(c.dir, "blobs"))
	if err != nil {
		return nil
	}
	var out []blob
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".part") {
			continue
		}
		if info, err := e.Info(); err == nil {
			out = append(out, blob{sum: e.Name(), size: info.Size(), mtime: info.ModTime()})
		}
	}
	return out
}

// Prune removes the least recently used files no needed image uses until
// the cache fits its limit. Needed files are never removed (a warning says
// when they alone exceed the limit).
func (c *Cache) Prune() error {
	c.mu.RLock()
	needed := map[string]bool{}
	for _, f := range c.files {
		needed[f.SHA256] = true
	}
	c.mu.RUnlock()
	bs := c.blobs()
	var total int64
	for _, b := range bs {
		total += b.size
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].mtime.Before(bs[j].mtime) })
	for _, b := range bs {
		if total <= c.limit {
			return nil
		}
		if needed[b.sum] {
			continue
		}
		if err := os.Remove(c.blobPath(b.sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("image cache: prune: %w", err)
		}
		total -= b.size
		c.log.Info("image cache: pruned", "sha256", b.sum, "bytes", b.size)
	}
	if total > c.limit {
		c.log.Warn("image cache: needed images exceed the size limit", "bytes", total, "limit", c.limit)
	}
	return nil
}

// file is an open cached file.
type file struct {
	*os.File
	size int64
}

func (f file) Size() int64 { return f.size }

// Open implements tftp.FileSource for "<image id>/<file name>" (case
// insensitive). Only whole, verified files exist under their digest, so a
// file still downloading is "not found".
func (c *Cache) Open(name string) (tftp.File, error) {
	c.mu.RLock()
	f, ok := c.files[strings.ToLower(name)]
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s is not a file of a cached image: %w", name, tftp.ErrNotFound)
	}
	fh, err := os.Open(c.blobPath(f.SHA256))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not downloaded yet: %w", name, tftp.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	st, err := fh.Stat()
	if err != nil || st.Size() != f.Size {
		fh.Close()
		return nil, fmt.Errorf("%s: cached copy has the wrong size: %w", name, tftp.ErrNotFound)
	}
	now := time.Now()
	_ = os.Chtimes(fh.Name(), now, now) // least recently used goes first
	return file{File: fh, size: f.Size}, nil
}

// Chain tries sources in order: the first that does not report "not found"
// answers.
type Chain []tftp.FileSource

// Open implements tftp.FileSource.
func (ch Chain) Open(name string) (tftp.File, error) {
	var last error = fmt.Errorf("%s: %w", name, tftp.ErrNotFound)
	for _, s := range ch {
		f, err := s.Open(name)
		if err == nil || !errors.Is(err, tftp.ErrNotFound) {
			return f, err
		}
		last = err
	}
	return nil, last
}
