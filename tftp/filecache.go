package tftp

import (
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxIdleFiles bounds the files kept open with no transfer using them.
const maxIdleFiles = 64

// fileCache shares one open File between all sessions of the same name,
// and keeps it open for a while after the last one ends (Config.FileLinger).
type fileCache struct {
	mu     sync.Mutex
	m      map[string]*sharedFile
	linger time.Duration // <= 0: close a file when its last session ends
	idle   int           // entries of m with refs == 0
}

type sharedFile struct {
	File
	name string
	refs int
	fd   int // for preadv; -1 when the File has no descriptor
	// data maps the file read-only when it has a descriptor: sessions
	// hand slices of it to sendmsg, so the kernel copies file pages
	// straight into the datagrams. Only the kernel reads it (a file
	// truncated meanwhile makes sendmsg fail with EFAULT, never a fault in
	// this process).
	data []byte
	// id identifies the file on disk when the File can Stat (idOK);
	// only such files linger.
	id        fileID
	idOK      bool
	idleSince time.Time
	timer     *time.Timer
	closed    atomic.Bool
}

// fileID is what tells a lingering file from one replaced or resized
// since it was opened. A change in place needs no check: the mapping
// shares the page cache with the file, so it shows the new bytes. The
// modification time is left out on purpose: sources such as the agent's
// image cache touch it on every open to track use.
type fileID struct {
	dev, ino uint64
	size     int64
}

func identify(f File) (fileID, bool) {
	st, ok := f.(interface{ Stat() (fs.FileInfo, error) })
	if !ok {
		return fileID{}, false
	}
	fi, err := st.Stat()
	if err != nil {
		return fileID{}, false
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(sys.Dev), ino: sys.Ino, size: fi.Size()}, true
}

// open returns the shared file for name, taking a reference. The name is
// always opened anew (it may have been removed, replaced or refused since);
// an entry already open for the same file is used instead of the new one.
func (c *fileCache) open(src FileSource, name string) (*sharedFile, error) {
	f, err := src.Open(name)
	if err != nil {
		return nil, err
	}
	id, idOK := identify(f)
	var toClose []*sharedFile
	defer func() { closeAll(toClose) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sf, ok := c.m[name]; ok {
		same := idOK && sf.idOK && sf.id == id
		if same || (!idOK && !sf.idOK && sf.refs > 0) {
			if sf.refs == 0 {
				c.idle--
				if sf.timer != nil {
					sf.timer.Stop()
				}
			}
			sf.refs++
			toClose = append(toClose, &sharedFile{File: f}) // the new handle is not needed
			return sf, nil
		}
		// Replaced or changed on disk: running sessions keep the old one,
		// which is closed when the last of them ends.
		delete(c.m, name)
		if sf.refs == 0 {
			c.idle--
			toClose = append(toClose, sf)
		}
	}
	sf := &sharedFile{File: f, name: name, refs: 1, fd: -1, id: id, idOK: idOK}
	if fder, ok := f.(interface{ Fd() uintptr }); ok {
		sf.fd = int(fder.Fd())
		if size := f.Size(); size > 0 && size == int64(int(size)) {
			if data, err := unix.Mmap(sf.fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err == nil {
				unix.Madvise(data, unix.MADV_SEQUENTIAL)
				sf.data = data
			}
		}
	}
	c.m[name] = sf
	return sf, nil
}

// release drops a reference. A file nobody uses lingers for c.linger if
// it can be identified on disk, else it is closed at once.
func (c *fileCache) release(f *sharedFile) {
	var toClose []*sharedFile
	defer func() { closeAll(toClose) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	if f.refs > 0 {
		return
	}
	if c.m[f.name] != f || c.linger <= 0 || !f.idOK || f.unlinked() {
		if c.m[f.name] == f {
			delete(c.m, f.name)
		}
		toClose = append(toClose, f)
		return
	}
	c.idle++
	f.idleSince = time.Now()
	if f.timer == nil {
		f.timer = time.AfterFunc(c.linger, func() { c.expire(f) })
	} else {
		f.timer.Reset(c.linger)
	}
	if c.idle > maxIdleFiles {
		var oldest *sharedFile
		for _, sf := range c.m {
			if sf.refs == 0 && (oldest == nil || sf.idleSince.Before(oldest.idleSince)) {
				oldest = sf
			}
		}
		c.drop(oldest)
		toClose = append(toClose, oldest)
	}
}

// expire closes f if it is still unused since its linger timer started.
func (c *fileCache) expire(f *sharedFile) {
	c.mu.Lock()
	if f.refs != 0 || c.m[f.name] != f || time.Since(f.idleSince) < c.linger {
		c.mu.Unlock()
		return
	}
	c.drop(f)
	c.mu.Unlock()
	f.close()
}

// drop removes an idle entry; the caller closes it outside the lock.
func (c *fileCache) drop(f *sharedFile) {
	delete(c.m, f.name)
	c.idle--
	if f.timer != nil {
		f.timer.Stop()
	}
}

// closeUnlinked closes the lingering files that were removed from disk
// since their last transfer, so the space they hold is freed now instead of
// after the linger. It returns how many it closed.
func (c *fileCache) closeUnlinked() int {
	var toClose []*sharedFile
	c.mu.Lock()
	for _, f := range c.m {
		if f.refs == 0 && f.unlinked() {
			c.drop(f)
			toClose = append(toClose, f)
		}
	}
	c.mu.Unlock()
	closeAll(toClose)
	return len(toClose)
}

// unlinked reports whether f's file has no name left on disk (it was
// removed while open). Files without a descriptor never count as removed.
func (f *sharedFile) unlinked() bool {
	if f.fd < 0 {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(f.fd, &st) == nil && st.Nlink == 0
}

// closeIdle closes every lingering file (the server stopped).
func (c *fileCache) closeIdle() {
	var toClose []*sharedFile
	c.mu.Lock()
	for _, f := range c.m {
		if f.refs == 0 {
			c.drop(f)
			toClose = append(toClose, f)
		}
	}
	c.mu.Unlock()
	closeAll(toClose)
}

func (f *sharedFile) close() {
	f.closed.Store(true)
	if f.data != nil {
		unix.Munmap(f.data)
		f.data = nil
	}
	f.File.Close()
}

func closeAll(fs []*sharedFile) {
	for _, f := range fs {
		f.close()
	}
}
