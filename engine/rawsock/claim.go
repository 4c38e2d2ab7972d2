package rawsock

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// PortClaim is a UDP socket that holds a port the raw socket serves, so
// the host's own UDP stack neither answers requests to it with ICMP port
// unreachable nor lets another program bind it. A filter that drops
// everything is attached before bind, so nothing is ever queued on it.
type PortClaim struct {
	file *os.File
}

// ClaimUDPPort binds 0.0.0.0:port on the interface (SO_BINDTODEVICE) in
// the calling thread's network namespace.
func ClaimUDPPort(iface string, port uint16) (*PortClaim, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("rawsock: claiming UDP port %d: %w", port, err)
	}
	fail := func(what string, err error) (*PortClaim, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("rawsock: claiming UDP port %d: %s: %w", port, what, err)
	}
	// One classic BPF instruction: return 0 (keep no byte).
	dropAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fail("filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if iface != "" {
		if err := unix.BindToDevice(fd, iface); err != nil {
			return fail("SO_BINDTODEVICE", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(port)}); err != nil {
		return fail("bind", err)
	}
	return &PortClaim{file: os.NewFile(uintptr(fd), fmt.Sprintf("udp-claim:%d", port))}, nil
}

// Close releases the port.
func (c *PortClaim) Close() error { return c.file.Close() }
