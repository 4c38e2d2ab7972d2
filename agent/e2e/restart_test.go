package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/central/model"
)

func sample(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if n, v, ok := strings.Cut(line, " "); ok && n == name {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func TestAgentRestartDuringImageDownloadResumesAndVerifies(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startSite(t, ctx, "198.18.84.0/24", lab.Options{Agents: 1, ImageBytes: 1 << 20})
	// Slow Central's link down so the download can be interrupted.
	if out, err := exec.Command("ip", "netns", "exec", s.Central.Host.NS, "tc", "qdisc", "add", "dev", "eth0", "root",
		"tbf", "rate", "160mbit", "burst", "256kb", "latency", "200ms").CombinedOutput(); err != nil {
		t.Fatalf("tc: %v: %s", err, out)
	}
	m, err := s.CentralMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const metricName = "peerboot_central_blob_bytes_sent_total"
	before := sample(m, metricName)
	if before <= 0 {
		t.Fatalf("Central has no %s sample", metricName)
	}
	big := lab.RandomBytes(40<<20, 99, 1)
	sum := sha256.Sum256(big)
	hexsum := hex.EncodeToString(sum[:])
	if _, err := s.AddImage(ctx, "big-x64", model.ArchX64, 50, map[string][]byte{"bigx64.efi": big}); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(s.Dir, "agent1", "blobs", hexsum)
	// Kill the agent once half of the file is down.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(blob + ".part"); err == nil && st.Size() >= int64(len(big))/2 {
			break
		}
		if _, err := os.Stat(blob); err == nil {
			t.Fatal("download finished before the agent could be killed")
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never started downloading the new image")
		}
		time.Sleep(2 * time.Millisecond) // polling a file with a deadline
	}
	s.StopAgent(0, syscall.SIGKILL)
	st, err := os.Stat(blob + ".part")
	if err != nil {
		t.Fatal(err)
	}
	part := st.Size()
	if part >= int64(len(big)) {
		t.Fatalf("partial file already whole (%d bytes)", part)
	}
	if _, err := os.Stat(blob); err == nil {
		t.Fatal("a partial download was renamed into the cache")
	}
	if err := s.StartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if gs := sha256.Sum256(got); hex.EncodeToString(gs[:]) != hexsum {
		t.Fatal("cached file does not match its sha256")
	}
	if _, err := os.Stat(blob + ".part"); err == nil {
		t.Error("partial file left behind")
	}
	m, err = s.CentralMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := int64(sample(m, metricName) - before)
	// Resumed: Central sent the first part (plus what was in flight) and
	// the rest once; starting over would have sent part + the whole file.
	if sent >= int64(len(big))+part {
		t.Errorf("Central sent %d bytes for a %d-byte file interrupted at %d: the download started over", sent, len(big), part)
	}
	t.Logf("interrupted at %d of %d bytes; Central sent %d bytes in all", part, len(big), sent)
	// A UEFI x64 client now boots the new image from the cache.
	res, err := s.Boot(ctx, s.NewClient(1)) // Arches[1] = 7, UEFI x64
	if err != nil {
		t.Fatal(err)
	}
	if res.BootFile != "big-x64/bigx64.efi" || res.Bytes != int64(len(big)) {
		t.Fatalf("client booted %s (%d bytes), want big-x64/bigx64.efi (%d bytes)", res.BootFile, res.Bytes, len(big))
	}
}
