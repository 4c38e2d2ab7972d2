package osboot_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStandaloneAgentBootsLinux network-boots Linux on OVMF (UEFI x64, its
// own PXE stack) and on SeaBIOS with the iPXE NIC ROM, in parallel, from
// the peerboot standalone agent next to a plain DHCP server: firmware
// DISCOVER -> ProxyDHCP -> (UEFI) 4011 -> TFTP of ipxe.efi -> iPXE, detected
// and handed the script -> kernel and initramfs over TFTP -> the marker on
// the serial console -> power off.
func TestStandaloneAgentBootsLinux(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := newOSLab(t, ctx, "198.18.48.0/24")
	logf := l.logFile(t, "agent.log")
	agent := l.Server.Command(ctx, l.bin, "agent", "--standalone", "--interface", "eth0",
		"--tftp-root", l.art.Root, "--bootfile", "bios="+l.art.BIOSNBP, "--bootfile", "efi64="+l.art.EFINBP,
		"--ipxe-script", l.art.Script, "--log-level", "debug")
	agent.Stdout, agent.Stderr = logf, logf
	if err := l.Net.Start(agent); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{69, 4011} {
		if err := l.WaitUDPListen(ctx, l.Server, port, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	guests := firmwareGuests(48)
	rep := l.bootAndRead(t, ctx, "peerboot-standalone-linux-boots.pcap", guests...)
	for _, gu := range guests {
		t.Run(gu.g.Name, func(t *testing.T) {
			requireBooted(t, gu)
			in := readInterop(rep, gu, l.Addr(1))
			for _, d := range in.discover {
				t.Logf("INTEROP %s DISCOVER %s", in.firmware, d)
			}
			for _, tr := range in.transfers {
				t.Logf("INTEROP %s TFTP %s", in.firmware, tr)
			}
			want := []string{l.art.Script, l.art.Kernel, l.art.Initrd}
			if gu.nbp != "" {
				want = append([]string{gu.nbp}, want...)
			}
			for _, f := range want {
				if !in.requested[f] {
					t.Errorf("%s: no TFTP request for %s to the agent in the capture", gu.g.Name, f)
				}
			}
			if !strings.Contains(gu.line, "kernel="+l.art.KernelRelease) {
				t.Errorf("marker %q does not name the kernel release", gu.line)
			}
		})
	}
}
