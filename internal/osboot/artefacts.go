package osboot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultKernelDir is where scripts/fetch-test-kernel.sh unpacks the
// kernel; PEERBOOT_TEST_KERNEL_DIR overrides it for both.
const DefaultKernelDir = "/var/cache/peerboot-test/kernel"

// Sources says where the inputs come from on the build machine.
type Sources struct {
	IPXEEFI   string // iPXE for UEFI x64 (Debian ipxe: /usr/lib/ipxe/ipxe.efi)
	Undionly  string // iPXE for BIOS PXE ROMs (Debian ipxe: /usr/lib/ipxe/undionly.kpxe)
	KernelDir string // holds vmlinuz and VERSION (scripts/fetch-test-kernel.sh)
	Busybox   string // a static busybox (Debian busybox-static: /bin/busybox)
}

// DefaultSources are the Debian package paths, with the kernel directory
// taken from PEERBOOT_TEST_KERNEL_DIR when it is set.
func DefaultSources() Sources {
	kdir := os.Getenv("PEERBOOT_TEST_KERNEL_DIR")
	if kdir == "" {
		kdir = DefaultKernelDir
	}
	return Sources{
		IPXEEFI:   "/usr/lib/ipxe/ipxe.efi",
		Undionly:  "/usr/lib/ipxe/undionly.kpxe",
		KernelDir: kdir,
		Busybox:   "/bin/busybox",
	}
}

// Check reports the first missing input, with the step that provides it.
func (s Sources) Check() error {
	for _, f := range []struct{ path, from string }{
		{s.IPXEEFI, "Debian package ipxe"},
		{s.Undionly, "Debian package ipxe"},
		{s.Busybox, "Debian package busybox-static"},
		{filepath.Join(s.KernelDir, "vmlinuz"), "scripts/fetch-test-kernel.sh"},
		{filepath.Join(s.KernelDir, "VERSION"), "scripts/fetch-test-kernel.sh"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("osboot: %s is missing (it comes from %s): %w", f.path, f.from, err)
		}
	}
	return nil
}

// Artefacts is a TFTP root ready to boot Linux. Paths are relative to Root,
// as a boot server's configuration names them.
type Artefacts struct {
	Root          string
	EFINBP        string // ipxe.efi: the boot file for EFI x64 clients
	BIOSNBP       string // undionly.kpxe: the boot file for BIOS clients
	Script        string // the iPXE script handed to iPXE clients
	Kernel        string
	Initrd        string
	KernelPackage string // the Debian package the kernel came from
	KernelRelease string // what uname -r prints under that kernel
}

// Files of a built root.
const (
	efiNBPName  = "ipxe.efi"
	biosNBPName = "undionly.kpxe"
	scriptName  = "boot.ipxe"
	kernelName  = "vmlinuz"
	initrdName  = "initrd.img"
)

// Script is the iPXE script: it loads the kernel and the initramfs
// relative to its own URL (so from the server that handed it out, over the
// same protocol) and passes the guest's MAC and iPXE platform to /init.
// initrd= on the command line lets the kernel's EFI stub find the
// initramfs that iPXE exposes on UEFI; the BIOS loader ignores it.
func Script() string {
	return strings.Join([]string{
		"#!ipxe",
		"echo peerboot test: booting Linux on ${mac} (${platform})",
		"kernel " + kernelName + " initrd=" + initrdName + " console=ttyS0,115200 panic=10 peerboot.mac=${mac} peerboot.platform=${platform}",
		"initrd " + initrdName,
		"boot",
		"",
	}, "\n")
}

// Build fills root (created if needed) with the iPXE boot programs, the
// kernel, a fresh initramfs and the iPXE script.
func Build(root string, src Sources) (*Artefacts, error) {
	if err := src.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("osboot: %w", err)
	}
	ver, err := os.ReadFile(filepath.Join(src.KernelDir, "VERSION"))
	if err != nil {
		return nil, fmt.Errorf("osboot: kernel version: %w", err)
	}
	// VERSION is "<package> vmlinuz-<release>" (scripts/fetch-test-kernel.sh).
	f := strings.Fields(string(ver))
	if len(f) != 2 || !strings.HasPrefix(f[1], "vmlinuz-") {
		return nil, fmt.Errorf("osboot: %s: want \"<package> vmlinuz-<release>\", have %q", filepath.Join(src.KernelDir, "VERSION"), ver)
	}
	a := &Artefacts{Root: root, EFINBP: efiNBPName, BIOSNBP: biosNBPName, Script: scriptName,
		Kernel: kernelName, Initrd: initrdName, KernelPackage: f[0], KernelRelease: strings.TrimPrefix(f[1], "vmlinuz-")}
	for _, c := range []struct{ from, to string }{
		{src.IPXEEFI, efiNBPName},
		{src.Undionly, biosNBPName},
		{filepath.Join(src.KernelDir, "vmlinuz"), kernelName},
	} {
		if err := copyFile(c.from, filepath.Join(root, c.to)); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(root, scriptName), []byte(Script()), 0o644); err != nil {
		return nil, fmt.Errorf("osboot: script: %w", err)
	}
	out, err := os.Create(filepath.Join(root, initrdName))
	if err != nil {
		return nil, fmt.Errorf("osboot: initramfs: %w", err)
	}
	if err := WriteInitramfs(out, src.Busybox); err != nil {
		out.Close()
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("osboot: initramfs: %w", err)
	}
	return a, nil
}

// Path is the absolute path of a file of the root.
func (a *Artefacts) Path(name string) string { return filepath.Join(a.Root, name) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("osboot: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("osboot: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("osboot: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("osboot: copy %s: %w", src, err)
	}
	return nil
}
