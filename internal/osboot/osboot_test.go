package osboot_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/internal/osboot"
)

func buildRoot(t *testing.T) *osboot.Artefacts {
	t.Helper()
	src := osboot.DefaultSources()
	if err := src.Check(); err != nil {
		t.Fatalf("boot artefacts unavailable (scripts/setup.sh runs scripts/fetch-test-kernel.sh): %v", err)
	}
	a, err := osboot.Build(filepath.Join(t.TempDir(), "root"), src)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBuildCopiesInputs checks that the root holds byte-identical copies
// of the boot programs and the kernel, and a script that names them.
func TestBuildCopiesInputs(t *testing.T) {
	src := osboot.DefaultSources()
	a := buildRoot(t)
	for _, c := range []struct{ from, name string }{
		{src.IPXEEFI, a.EFINBP},
		{src.Undionly, a.BIOSNBP},
		{filepath.Join(src.KernelDir, "vmlinuz"), a.Kernel},
	} {
		want, err := os.ReadFile(c.from)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(a.Path(c.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", c.name, c.from)
		}
	}
	script, err := os.ReadFile(a.Path(a.Script))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#!ipxe\n", "\nkernel " + a.Kernel + " ", "initrd=" + a.Initrd, "\ninitrd " + a.Initrd + "\n", "console=ttyS0", "peerboot.mac=${mac}", "\nboot\n"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if a.KernelRelease == "" || !strings.HasPrefix(a.KernelPackage, "linux-image-") {
		t.Errorf("kernel package %q release %q", a.KernelPackage, a.KernelRelease)
	}
}

// TestBuildNamesMissingInput checks that a missing kernel is reported with
// the step that provides it.
func TestBuildNamesMissingInput(t *testing.T) {
	src := osboot.DefaultSources()
	src.KernelDir = t.TempDir()
	_, err := osboot.Build(t.TempDir(), src)
	if err == nil || !strings.Contains(err.Error(), "scripts/fetch-test-kernel.sh") {
		t.Fatalf("err = %v, want one naming scripts/fetch-test-kernel.sh", err)
	}
}

// TestInitramfsReadByCPIO lists the initramfs with GNU cpio: the archive
// must be valid newc with the device node, symlink and executables /init
// needs.
func TestInitramfsReadByCPIO(t *testing.T) {
	a := buildRoot(t)
	f, err := os.Open(a.Path(a.Initrd))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -itv --quiet")
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gzip | cpio: %v\n%s", err, out)
	}
	listing := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		name := fields[len(fields)-1]
		if len(fields) > 2 && fields[len(fields)-2] == "->" {
			name = fields[len(fields)-3]
		}
		listing[name] = line
	}
	for name, want := range map[string]string{
		"init":        "-rwxr-xr-x",
		"bin/busybox": "-rwxr-xr-x",
		"bin/sh":      "lrwxrwxrwx",
		"dev/console": "crw-------",
		"proc":        "drwxr-xr-x",
		"sys":         "drwxr-xr-x",
	} {
		line, ok := listing[name]
		if !ok || !strings.HasPrefix(line, want) {
			t.Errorf("%s: listed as %q, want mode %s\n%s", name, line, want, out)
		}
	}
	if line := listing["dev/console"]; !strings.Contains(line, "5,   1") {
		t.Errorf("dev/console is not device 5,1: %q", line)
	}
	if line := listing["bin/sh"]; !strings.HasSuffix(line, "-> busybox") {
		t.Errorf("bin/sh does not point to busybox: %q", line)
	}
}

// TestKernelRunsInitramfs boots the kernel and initramfs directly under
// QEMU (software emulation, no network): /init must print the marker with
// the MAC from the command line and the kernel's release, and power off.
func TestKernelRunsInitramfs(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (Debian qemu-system-x86): %v", err)
	}
	a := buildRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	serial := filepath.Join(t.TempDir(), "serial.log")
	const mac = "52:54:00:00:00:99"
	start := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none", "-machine", "pc", "-no-reboot",
		"-serial", "file:"+serial, "-kernel", a.Path(a.Kernel), "-initrd", a.Path(a.Initrd),
		"-append", "console=ttyS0 panic=-1 peerboot.mac="+mac+" peerboot.platform=direct").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu: %v (%s)\n%s", err, ctx.Err(), out)
	}
	took := time.Since(start)
	log, err := os.ReadFile(serial)
	if err != nil {
		t.Fatal(err)
	}
	want := osboot.Marker(mac) + "kernel=" + a.KernelRelease + " platform=direct "
	if !strings.Contains(string(log), want) {
		t.Fatalf("serial console lacks %q:\n%s", want, tail(log, 20))
	}
	if !strings.Contains(string(log), "reboot: Power down") {
		t.Errorf("the guest did not power off:\n%s", tail(log, 20))
	}
	t.Logf("kernel %s ran /init and powered off %.1fs after QEMU started", a.KernelRelease, took.Seconds())
}
