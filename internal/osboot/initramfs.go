package osboot

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// MarkerPrefix starts the line /init prints on the console once Linux is
// up. The rest of the line names the guest: "mac=<MAC> kernel=<release>
// platform=<iPXE platform>".
const MarkerPrefix = "PEERBOOT-BOOT-OK"

// Marker is the exact start of the line a guest with this MAC prints
// (lower-case, colon-separated, as iPXE's ${mac} expands).
func Marker(mac string) string { return MarkerPrefix + " mac=" + mac + " " }

// initScript is /init. The marker is assembled from two halves so that the
// literal string exists nowhere but in the output of a running /init: the
// kernel echoes its command line, iPXE echoes nothing of this file.
const initScript = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
mac=unknown platform=unknown
for arg in $(/bin/busybox cat /proc/cmdline); do
	case "$arg" in
	peerboot.mac=*) mac="${arg#peerboot.mac=}" ;;
	peerboot.platform=*) platform="${arg#peerboot.platform=}" ;;
	esac
done
head=PEERBOOT-BOOT
echo "${head}-OK mac=$mac kernel=$(/bin/busybox uname -r) platform=$platform uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"
/bin/busybox sync
/bin/busybox poweroff -f
# poweroff -f does not return; if it did, keep PID 1 alive rather than panic.
while :; do /bin/busybox sleep 60; done
`

// WriteInitramfs writes a gzip-compressed newc cpio archive holding
// busybox (a static binary, e.g. /bin/busybox from busybox-static), /init
// and a /dev/console node, so no mknod is needed on the build machine.
func WriteInitramfs(w io.Writer, busybox string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("osboot: busybox: %w", err)
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("osboot: gzip: %w", err)
	}
	cw := newCPIOWriter(zw)
	entries := []cpioEntry{
		{Name: "bin", Mode: modeDir | 0o755},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "proc", Mode: modeDir | 0o755},
		{Name: "sys", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeCharDev | 0o600, Major: 5, Minor: 1},
		{Name: "bin/busybox", Mode: modeFile | 0o755, Data: bb},
		{Name: "bin/sh", Mode: modeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "init", Mode: modeFile | 0o755, Data: []byte(initScript)},
	}
	for _, e := range entries {
		if err := cw.Add(e); err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("osboot: gzip: %w", err)
	}
	return nil
}
