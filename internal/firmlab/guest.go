package firmlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Firmware is the boot firmware of a guest.
type Firmware string

// The two firmwares the lab runs.
const (
	// OVMF is UEFI x64 (edk2) with its own PXE stack on virtio-net; the
	// NIC's option ROM is disabled so no iPXE is involved.
	OVMF Firmware = "ovmf"
	// SeaBIOSiPXE is SeaBIOS booting from the iPXE ROM of an e1000 NIC.
	SeaBIOSiPXE Firmware = "seabios-ipxe"
)

// Guest describes one QEMU guest.
type Guest struct {
	Firmware Firmware
	MAC      net.HardwareAddr
	UUID     string // SMBIOS UUID, sent by the firmware in option 97
	Name     string

	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
	Dir     string
}

// StartGuest boots a guest on a fresh tap on the lab bridge. It runs
// until ctx ends (give it a deadline) or Stop is called; Close kills it in
// any case.
func (l *Lab) StartGuest(ctx context.Context, g *Guest) error {
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
		"-vga", "std", "-display", "none", "-name", g.Name,
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no"}
	if g.UUID != "" {
		args = append(args, "-uuid", g.UUID)
	}
	switch g.Firmware {
	case OVMF:
		vars := filepath.Join(g.Dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars); err != nil {
			return err
		}
		args = append(args, "-machine", "q35",
			"-serial", "file:"+filepath.Join(g.Dir, "serial.log"),
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-device", "virtio-net-pci,netdev=n0,mac="+g.MAC.String()+",bootindex=1,romfile=")
	case SeaBIOSiPXE:
		args = append(args, "-machine", "pc", "-boot", "n",
			"-device", "e1000,netdev=n0,mac="+g.MAC.String()+",bootindex=1",
			"-chardev", "file,id=dbg,path="+filepath.Join(g.Dir, "seabios.log"),
			"-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	default:
		return fmt.Errorf("firmlab: unknown firmware %q", g.Firmware)
	}
	return l.launchQEMU(ctx, g, args)
}

// Started is when QEMU was started.
func (g *Guest) Started() time.Time { return g.started }

// Done is closed when QEMU has exited.
func (g *Guest) Done() <-chan struct{} { return g.done }

// Stop kills QEMU (by its process group) and waits for it.
func (g *Guest) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("firmlab: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("firmlab: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("firmlab: copy %s: %w", src, err)
	}
	return out.Close()
}
