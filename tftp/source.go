package tftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// File is one open read-only file of a FileSource. ReadAt must be safe for
// concurrent use: every session of the same name shares one File.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// FileSource resolves a cleaned, slash-separated name relative to the TFTP
// root (no leading slash, no "..") to an open file. It returns an error
// wrapping ErrNotFound or ErrAccess for the client's ERROR code.
type FileSource interface {
	Open(name string) (File, error)
}

// Errors a FileSource wraps so the server answers with the right code.
var (
	ErrNotFound = errors.New("file not found")   // ERROR 1
	ErrAccess   = errors.New("access violation") // ERROR 2
)

// CleanName turns a name from a request into a slash-separated name
// relative to the root: backslashes become slashes, leading slashes are
// dropped (absolute names are rooted in the TFTP root), "." and empty
// components vanish. Names with NUL bytes or ".." components are refused
// with ErrAccess; an empty result with ErrNotFound.
func CleanName(raw string) (string, error) {
	if strings.IndexByte(raw, 0) >= 0 {
		return "", fmt.Errorf("NUL byte in name: %w", ErrAccess)
	}
	s := strings.ReplaceAll(raw, `\`, "/")
	parts := strings.Split(s, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%q climbs with ..: %w", raw, ErrAccess)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("empty name: %w", ErrNotFound)
	}
	return path.Join(out...), nil
}

// DirSource serves regular files under a directory. Lookups go through
// os.Root, so neither ".." nor a symlink can leave the directory; device
// files, FIFOs, sockets and directories are refused.
type DirSource struct {
	root *os.Root
	// CaseSensitive turns off the case-insensitive fallback lookup.
	CaseSensitive bool
}

// NewDirSource opens dir as a TFTP root.
func NewDirSource(dir string) (*DirSource, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("tftp root: %w", err)
	}
	return &DirSource{root: r}, nil
}

// Close releases the root directory.
func (d *DirSource) Close() error { return d.root.Close() }

// Open implements FileSource.
func (d *DirSource) Open(name string) (File, error) {
	if strings.HasPrefix(path.Base(name), uploadPrefix) {
		return nil, fmt.Errorf("%s is an upload in progress: %w", name, ErrNotFound)
	}
	f, err := d.open(name)
	if errors.Is(err, fs.ErrNotExist) && !d.CaseSensitive {
		if alt, ok := d.foldLookup(name); ok {
			f, err = d.open(alt)
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
		default:
			// permission, symlink escaping the root, path escapes, ...
			return nil, fmt.Errorf("%s: %v: %w", name, err, ErrAccess)
		}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: stat: %v: %w", name, err, ErrAccess)
	}
	switch {
	case st.IsDir():
		f.Close()
		return nil, fmt.Errorf("%s is a directory: %w", name, ErrNotFound)
	case !st.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%v): %w", name, st.Mode().Type(), ErrAccess)
	}
	return &osFile{File: f, size: st.Size()}, nil
}

func (d *DirSource) open(name string) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO must not hang the server.
	return d.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// foldLookup walks name component by component, matching each against the
// directory entries without regard to case.
func (d *DirSource) foldLookup(name string) (string, bool) {
	dir := "."
	for _, part := range strings.Split(name, "/") {
		f, err := d.root.Open(dir)
		if err != nil {
			return "", false
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return "", false
		}
		found := ""
		for _, e := range ents {
			if e.Name() == part {
				found = part
				break
			}
			if found == "" && strings.EqualFold(e.Name(), part) {
				found = e.Name()
			}
		}
		if found == "" {
			return "", false
		}
		dir = path.Join(dir, found)
	}
	return dir, true
}

type osFile struct {
	*os.File
	size int64
}

func (f *osFile) Size() int64 { return f.size }
