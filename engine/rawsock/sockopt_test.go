package rawsock_test

import "golang.org/x/sys/unix"

// setsockoptBroadcast lets a UDP socket send to 255.255.255.255 out of
// eth0 (lab namespaces have no default route).
func setsockoptBroadcast(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		return err
	}
	return unix.BindToDevice(fd, "eth0")
}
