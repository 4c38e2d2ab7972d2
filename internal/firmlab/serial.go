package firmlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SerialLog is the file that receives everything the guest writes to its
// first serial port (COM1, Linux's ttyS0), for guests started by
// StartSerialGuest.
func (g *Guest) SerialLog() string { return filepath.Join(g.Dir, "serial.log") }

// StartSerialGuest starts a guest like StartGuest, with its first serial
// port recorded in SerialLog for both firmwares, so that an operating
// system booted with console=ttyS0 can be read. An OVMF guest from
// StartGuest already has it; a SeaBIOS guest gets a COM1 here, and
// -no-reboot so that a guest that reboots (a kernel panic) stops instead
// of booting from the network again.
func (l *Lab) StartSerialGuest(ctx context.Context, g *Guest) error {
	if g.Firmware != SeaBIOSiPXE {
		return l.StartGuest(ctx, g)
	}
	if g.Name == "" {
		g.Name = string(g.Firmware)
	}
	g.Dir = filepath.Join(l.Dir, g.Name)
	if err := os.MkdirAll(g.Dir, 0o755); err != nil {
		return fmt.Errorf("firmlab: guest dir: %w", err)
	}
	tap, err := l.Net.AddTap()
	if err != nil {
		return err
	}
	args := []string{"-accel", "tcg", "-smp", "1", "-m", "256", "-nodefaults", "-no-user-config",
		"-vga", "std", "-display", "none", "-name", g.Name, "-no-reboot",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-machine", "pc", "-boot", "n",
		"-device", "e1000,netdev=n0,mac=" + g.MAC.String() + ",bootindex=1",
		"-serial", "file:" + g.SerialLog(),
		"-chardev", "file,id=dbg,path=" + filepath.Join(g.Dir, "seabios.log"),
		"-device", "isa-debugcon,iobase=0x402,chardev=dbg"}
	if g.UUID != "" {
		args = append(args, "-uuid", g.UUID)
	}
	return l.launchQEMU(ctx, g, args)
}

// launchQEMU runs QEMU with args in the hub namespace (where the taps are)
// for guest g, logging to g.Dir/qemu.log, and tracks its exit.
func (l *Lab) launchQEMU(ctx context.Context, g *Guest, args []string) error {
	cmd := l.Net.HubCommand(ctx, "qemu-system-x86_64", args...)
	logf, err := os.Create(filepath.Join(g.Dir, "qemu.log"))
	if err != nil {
		return fmt.Errorf("firmlab: qemu log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := l.Net.Start(cmd); err != nil {
		logf.Close()
		return err
	}
	g.cmd, g.done, g.started = cmd, make(chan struct{}), time.Now()
	go func() { _ = cmd.Wait(); logf.Close(); close(g.done) }()
	return nil
}

// WaitSerial polls the guest's serial log until a line contains want and
// returns that line (carriage returns and terminal escapes removed). It
// gives up when the guest has exited without printing it, when ctx ends,
// or at deadline.
func (g *Guest) WaitSerial(ctx context.Context, want string, deadline time.Time) (string, error) {
	find := func() (string, bool) {
		b, _ := os.ReadFile(g.SerialLog())
		for _, line := range bytes.Split(b, []byte("\n")) {
			if i := bytes.Index(line, []byte(want)); i >= 0 {
				return string(bytes.TrimSpace(stripEscapes(line[i:]))), true
			}
		}
		return "", false
	}
	for {
		if line, ok := find(); ok {
			return line, nil
		}
		if !time.Now().Before(deadline) {
			return "", fmt.Errorf("firmlab: %s printed no %q on its serial console within %s", g.Name, want, deadline.Sub(g.started).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("firmlab: waiting for %q from %s: %w", want, g.Name, ctx.Err())
		case <-g.done:
			if line, ok := find(); ok {
				return line, nil
			}
			return "", fmt.Errorf("firmlab: %s exited after %s without printing %q on its serial console", g.Name, time.Since(g.started).Round(time.Second), want)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stripEscapes removes carriage returns and ANSI escape sequences (the
// UEFI console writes both).
func stripEscapes(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\r':
		case b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[':
			i += 2
			for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
				i++
			}
		default:
			out = append(out, b[i])
		}
	}
	return out
}
