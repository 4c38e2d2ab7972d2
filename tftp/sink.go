package tftp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// FileSink receives uploaded files (write requests). Create is given a
// cleaned name (as FileSource.Open is) and must refuse a name that already
// exists with an error wrapping ErrExists, a missing directory with
// ErrNotFound and anything else unsafe with ErrAccess. Nothing is visible
// under name before NewFile.Commit succeeds.
type FileSink interface {
	Create(name string) (NewFile, error)
}

// NewFile is an upload in progress. Data arrives in order through Write.
// Commit publishes it under its name atomically, and fails (wrapping
// ErrExists) if the name appeared meanwhile; Abort discards it.
type NewFile interface {
	io.Writer
	Commit() error
	Abort() error
}

// ErrExists is wrapped by a FileSink refusing to replace a file (ERROR 6).
var ErrExists = errors.New("file already exists")

// uploadPrefix starts the name of every upload in progress; read requests
// for such names are refused so a half-written file is never served.
const uploadPrefix = ".peerboot-upload-"

// Create implements FileSink: the upload goes to a temporary file in the
// target's directory (created exclusively, through the same os.Root that
// confines reads) and is hard-linked to its name on Commit, which fails
// rather than replace a file that appeared meanwhile.
func (d *DirSource) Create(name string) (NewFile, error) {
	base := path.Base(name)
	if strings.HasPrefix(base, uploadPrefix) {
		return nil, fmt.Errorf("%s: reserved name: %w", name, ErrAccess)
	}
	if _, err := d.root.Lstat(name); err == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrAccess)
	}
	dir := path.Dir(name)
	st, err := d.root.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: directory %s does not exist: %w", name, dir, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrAccess)
	case !st.IsDir():
		return nil, fmt.Errorf("%s: %s is not a directory: %w", name, dir, ErrAccess)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, uploadPrefix+hex.EncodeToString(rnd[:]))
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: create temporary file: %v: %w", name, err, ErrAccess)
	}
	return &dirUpload{root: d.root, f: f, tmp: tmp, name: name}, nil
}

type dirUpload struct {
	root      *os.Root
	f         *os.File
	tmp, name string
}

func (u *dirUpload) Write(p []byte) (int, error) { return u.f.Write(p) }

func (u *dirUpload) Commit() error {
	defer u.root.Remove(u.tmp)
	if err := u.f.Sync(); err != nil {
		u.f.Close()
		return fmt.Errorf("upload %s: sync: %w", u.name, err)
	}
	if err := u.f.Close(); err != nil {
		return fmt.Errorf("upload %s: close: %w", u.name, err)
	}
	if err := u.root.Link(u.tmp, u.name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("upload %s: %w", u.name, ErrExists)
		}
		return fmt.Errorf("upload %s: publish: %w", u.name, err)
	}
	return nil
}

func (u *dirUpload) Abort() error {
	u.f.Close()
	return u.root.Remove(u.tmp)
}
