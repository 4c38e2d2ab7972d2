package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/agent/pxesim"
	"github.com/peerboot/peerboot/central/model"
)

func TestSIGTERMLetsRunningTransfersFinish(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startSite(t, ctx, "198.18.89.0/24", lab.Options{Agents: 1, ImageBytes: 512 << 10})
	big := lab.RandomBytes(48<<20, 5, 5)
	if _, err := s.AddImage(ctx, "big-x64", model.ArchX64, 50, map[string][]byte{"bigx64.efi": big}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res pxesim.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		c := s.NewClient(1) // UEFI x64: the big image
		c.Windowsize = 1    // slow enough to be caught mid-transfer
		c.Blksize = 512
		res, err := s.Boot(ctx, c)
		done <- result{res, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, s, 0, "peerboot_tftp_active_transfers") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the transfer never started")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if err := s.Agents[0].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("transfer running at SIGTERM failed: %v", r.err)
	}
	if r.res.Bytes != int64(len(big)) {
		t.Fatalf("got %d of %d bytes", r.res.Bytes, len(big))
	}
	if code := s.Agents[0].Wait(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM", code)
	}
	logb, _ := os.ReadFile(s.Agents[0].Log)
	if !strings.Contains(string(logb), "shutting down") || !strings.Contains(string(logb), "agent stopped") {
		t.Errorf("agent log lacks the shutdown lines")
	}
}

func TestDemoInterruptedCleansUp(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "demo", "--clients", "5000", "--image-mb", "8")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var out strings.Builder
	for !strings.Contains(out.String(), "booting [") {
		n, err := stderr.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("demo ended before booting: %v\n%s", err, out.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	rest := make(chan string)
	go func() {
		var b strings.Builder
		for {
			n, err := stderr.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				rest <- b.String()
				return
			}
		}
	}()
	tail := <-rest
	err = cmd.Wait()
	if err == nil {
		t.Fatal("interrupted demo exited 0")
	}
	if !strings.Contains(tail, "interrupted; everything it made is removed") {
		t.Errorf("stderr tail %q lacks the interruption line", tail)
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	if prefix := "pb" + strconv.Itoa(cmd.Process.Pid) + "-"; strings.Contains(string(ns), prefix) {
		t.Errorf("namespaces left behind: %s", ns)
	}
}

func TestDemoQEMUBootsRealFirmware(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "demo", "--clients", "5", "--qemu", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo --qemu: %v\n%s", err, stderr.String())
	}
	var sum struct {
		Booted int
		VMs    []struct {
			Firmware string
			Booted   bool
			File     string
		}
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	want := map[string]string{"ovmf": "demo-x64/bootx64.efi", "seabios-ipxe": "demo-x64/undionly.kpxe"}
	if sum.Booted != 5 || len(sum.VMs) != 2 {
		t.Fatalf("summary %+v: want 5 clients and 2 VMs", sum)
	}
	for _, vm := range sum.VMs {
		if !vm.Booted || vm.File != want[vm.Firmware] {
			t.Errorf("vm %+v: want it to fetch %s", vm, want[vm.Firmware])
		}
	}
}
