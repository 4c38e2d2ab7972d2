package pollcall

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDoReportsWaitDataAndErrors(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 16)
	recv := func(fd int) (uintptr, bool, error) {
		r, wait, e := Do(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_DONTWAIT)
		if e != 0 {
			return r, wait, e
		}
		return r, wait, nil
	}
	if r, wait, err := recv(fds[1]); !wait || err != nil || r != 0 {
		t.Fatalf("empty socket: r %d wait %v err %v, want wait", r, wait, err)
	}
	if _, err := unix.Write(fds[0], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if r, wait, err := recv(fds[1]); wait || err != nil || r != 5 || string(buf[:5]) != "hello" {
		t.Fatalf("after a write: r %d wait %v err %v buf %q", r, wait, err, buf[:r])
	}
	if _, wait, err := recv(-1); wait || err != unix.EBADF {
		t.Fatalf("bad descriptor: wait %v err %v, want EBADF", wait, err)
	}
}
