package osboot

import (
	"bufio"
	"fmt"
	"io"
)

// cpio mode bits (the type part of st_mode).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioWriter writes a cpio archive in the "newc" (SVR4, no CRC) format the
// Linux kernel unpacks as an initramfs.
type cpioWriter struct {
	w     *bufio.Writer
	n     int64 // bytes written, for the 4-byte alignment
	inode uint32
	err   error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriter(w), inode: 1}
}

// cpioEntry is one archive member.
type cpioEntry struct {
	Name         string // path without a leading slash
	Mode         uint32 // type and permission bits
	Data         []byte // file contents or symlink target
	Major, Minor uint32 // device numbers of a device node (rdev)
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.n += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Add appends one entry.
func (c *cpioWriter) Add(e cpioEntry) error {
	if e.Name == "" || e.Name[0] == '/' {
		return fmt.Errorf("osboot: cpio: bad member name %q", e.Name)
	}
	nlink := uint32(1)
	if e.Mode&0o170000 == modeDir {
		nlink = 2
	}
	c.header(c.inode, e.Mode, nlink, uint32(len(e.Data)), e.Major, e.Minor, e.Name)
	c.inode++
	c.write(e.Data)
	c.pad()
	if c.err != nil {
		return fmt.Errorf("osboot: cpio: writing %s: %w", e.Name, c.err)
	}
	return nil
}

// header writes the 110-byte newc header, the NUL-terminated name and the
// padding that aligns the data to 4 bytes.
func (c *cpioWriter) header(ino, mode, nlink, size, rmajor, rminor uint32, name string) {
	fields := []uint32{ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, uint32(len(name) + 1), 0}
	c.write([]byte("070701"))
	for _, f := range fields {
		c.write(fmt.Appendf(nil, "%08x", f))
	}
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	c.header(0, 0, 1, 0, 0, 0, "TRAILER!!!")
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return fmt.Errorf("osboot: cpio: %w", c.err)
	}
	return nil
}
