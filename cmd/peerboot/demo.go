package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peerboot/peerboot/agent/lab"
	"github.com/peerboot/peerboot/agent/pxesim"
	"github.com/peerboot/peerboot/internal/firmlab"
	"github.com/peerboot/peerboot/internal/netlab"
)

func init() {
	register(command{name: "demo", summary: "boot simulated PXE clients from Central and three agents in a virtual subnet (root)", run: runDemo})
}

// demoSummary is what `peerboot demo --json` prints.
type demoSummary struct {
	Clients     int            `json:"clients"`
	Booted      int            `json:"booted"`
	Failed      int            `json:"failed"`
	PerAgent    map[string]int `json:"per_agent"`
	PerArch     map[string]int `json:"per_arch"`
	VMs         []demoVM       `json:"vms,omitempty"`
	DupOffers   int            `json:"duplicate_offers"`
	Bytes       int64          `json:"bytes"`
	Seconds     float64        `json:"seconds"`
	MBPerSecond float64        `json:"mb_per_s"`
	Failures    []string       `json:"failures,omitempty"`
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	clients := fs.Int("clients", 30, "number of simulated PXE clients")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	qemu := fs.Bool("qemu", false, "also PXE-boot a real UEFI (OVMF) and a real BIOS (SeaBIOS + iPXE) virtual machine under QEMU")
	imageMB := fs.Int("image-mb", 4, "size of the largest demo boot file in MiB")
	parallel := fs.Int("parallel", 10, "clients booting at the same time")
	fs.SetOutput(io.Discard) // a bad flag is one line; -h prints the flags
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: peerboot demo [--clients N] [--json] (as root)")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments: %v", errUsage, fs.Args())
	}
	if *clients < 1 || *clients > 10000 {
		return fmt.Errorf("%w: --clients %d: want 1-10000", errUsage, *clients)
	}
	if *imageMB < 1 || *imageMB > 512 {
		return fmt.Errorf("%w: --image-mb %d: want 1-512", errUsage, *imageMB)
	}
	if *parallel < 1 {
		return fmt.Errorf("%w: --parallel must be at least 1", errUsage)
	}
	if runtime.GOOS != "linux" {
		return fmt.Errorf("demo needs Linux (network namespaces)")
	}
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("demo %v: run it as root (sudo)", err)
	}
	progress := stderr
	say := func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) }
	start := time.Now()
	say("peerboot demo: building a virtual subnet 198.18.77.0/24 (Central, 3 agents, %d clients)", *clients)
	opts := lab.Options{ImageBytes: *imageMB << 20, Log: progress}
	var fl *firmlab.Lab
	if *qemu {
		if err := firmlab.Available(); err != nil {
			return fmt.Errorf("demo --qemu: %v", err)
		}
		dir, err := os.MkdirTemp("", "peerboot-demo-vm-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if fl, err = firmlab.New("198.18.77.0/24", dir); err != nil {
			return fmt.Errorf("demo --qemu: %w", err)
		}
		defer fl.Close()
		say("starting a plain DHCP server (addresses only) for the virtual machines")
		if err := fl.StartDHCP(ctx, firmlab.Dnsmasq); err != nil {
			return fmt.Errorf("demo --qemu: %w", err)
		}
		opts.Net = fl.Net
	}
	site, err := lab.Start(ctx, opts)
	if site != nil {
		defer site.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; everything it made is removed")
		}
		return fmt.Errorf("demo: %w", err)
	}
	say("site ready in %.1fs: Central %s, agents %s", time.Since(start).Seconds(), site.CentralURL, agentList(site))

	sum := demoSummary{Clients: *clients, PerAgent: map[string]int{}, PerArch: map[string]int{}}
	for i := range site.Agents {
		sum.PerAgent[site.Agents[i].Name] = 0
	}
	var mu sync.Mutex
	var booted, failed int
	work := make(chan int)
	var wg sync.WaitGroup
	bootStart := time.Now()
	for w := 0; w < *parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := site.NewClient(i)
				res, err := site.Boot(ctx, c)
				mu.Lock()
				if err != nil {
					failed++
					sum.Failures = append(sum.Failures, fmt.Sprintf("client %s (%s): %v", c.MAC, pxesim.ArchName(c.Arch), err))
				} else {
					booted++
					name := res.Server.String()
					if k := site.AgentIndex(res.Server); k >= 0 {
						name = site.Agents[k].Name
					}
					sum.PerAgent[name]++
					sum.PerArch[pxesim.ArchName(c.Arch)]++
					sum.Bytes += res.Bytes
					if res.Offers > 1 {
						sum.DupOffers += res.Offers - 1
					}
				}
				mu.Unlock()
			}
		}()
	}
	stopBar := make(chan struct{})
	barDone := make(chan struct{})
	go func() {
		defer close(barDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopBar:
				return
			case <-t.C:
				mu.Lock()
				b, f, mb := booted, failed, float64(sum.Bytes)/1e6
				mu.Unlock()
				drawBar(progress, b, f, *clients, mb, time.Since(bootStart))
			}
		}
	}()
	for i := 0; i < *clients && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(stopBar)
	<-barDone
	mu.Lock()
	drawBar(progress, booted, failed, *clients, float64(sum.Bytes)/1e6, time.Since(bootStart))
	mu.Unlock()
	fmt.Fprintln(progress)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; everything it made is removed")
	}
	sum.Seconds = time.Since(bootStart).Seconds()
	if sum.Seconds > 0 {
		sum.MBPerSecond = float64(sum.Bytes) / 1e6 / sum.Seconds
	}
	if fl != nil {
		say("booting a UEFI (OVMF) and a BIOS (SeaBIOS + iPXE) virtual machine under QEMU (software emulation, up to 2 minutes)")
		sum.VMs = bootVMs(ctx, fl, site, say)
		for _, vm := range sum.VMs {
			if !vm.Booted {
				failed++
				sum.Failures = append(sum.Failures, fmt.Sprintf("vm %s: %s", vm.Firmware, vm.Error))
			}
		}
	}
	sum.Booted, sum.Failed = booted, failed
	sort.Strings(sum.Failures)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(stdout, sum)
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d clients failed to boot", sum.Failed, sum.Clients)
	}
	return nil
}

func agentList(s *lab.Site) string {
	var parts []string
	for i, a := range s.Agents {
		parts = append(parts, fmt.Sprintf("%s=%s", a.Name, s.AgentAddr(i)))
	}
	return strings.Join(parts, " ")
}

func drawBar(w io.Writer, booted, failed, total int, mb float64, el time.Duration) {
	const width = 30
	n := (booted + failed) * width / total
	fmt.Fprintf(w, "\rbooting [%s%s] %d/%d booted, %d failed, %.1f MB in %.1fs",
		strings.Repeat("#", n), strings.Repeat(".", width-n), booted, total, failed, mb, el.Seconds())
}

func printSummary(w io.Writer, s demoSummary) {
	fmt.Fprintf(w, "\npeerboot demo summary\n")
	fmt.Fprintf(w, "  %-22s %d of %d\n", "clients booted", s.Booted, s.Clients)
	fmt.Fprintf(w, "  %-22s %d\n", "failures", s.Failed)
	fmt.Fprintf(w, "  %-22s %d\n", "duplicate offers", s.DupOffers)
	fmt.Fprintf(w, "  %-22s %.1f MB in %.2fs = %.1f MB/s\n", "TFTP throughput", float64(s.Bytes)/1e6, s.Seconds, s.MBPerSecond)
	fmt.Fprintf(w, "\n  %-10s %8s %8s\n", "agent", "clients", "share")
	names := make([]string, 0, len(s.PerAgent))
	for n := range s.PerAgent {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		share := 0.0
		if s.Booted > 0 {
			share = 100 * float64(s.PerAgent[n]) / float64(s.Booted)
		}
		fmt.Fprintf(w, "  %-10s %8d %7.1f%%\n", n, s.PerAgent[n], share)
	}
	fmt.Fprintf(w, "\n  %-10s %8s\n", "firmware", "clients")
	archs := make([]string, 0, len(s.PerArch))
	for a := range s.PerArch {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	for _, a := range archs {
		fmt.Fprintf(w, "  %-10s %8d\n", a, s.PerArch[a])
	}
	for _, vm := range s.VMs {
		state := "downloaded " + vm.File
		if !vm.Booted {
			state = "FAILED: " + vm.Error
		}
		fmt.Fprintf(w, "  vm %-14s %s from %s in %.1fs\n", vm.Firmware, state, vm.Agent, vm.Seconds)
	}
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  failed: %s\n", f)
	}
}

// demoVM is one QEMU guest of `peerboot demo --qemu`.
type demoVM struct {
	Firmware string  `json:"firmware"`
	MAC      string  `json:"mac"`
	Booted   bool    `json:"booted"` // fetched its whole boot file by TFTP from an agent
	File     string  `json:"file,omitempty"`
	Agent    string  `json:"agent,omitempty"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
}

// bootVMs starts an OVMF and a SeaBIOS+iPXE guest and waits until each has
// downloaded its boot file from an agent, as Central's events show. The
// demo images are not operating systems, so that is as far as they go.
func bootVMs(ctx context.Context, fl *firmlab.Lab, site *lab.Site, say func(string, ...any)) []demoVM {
	guests := []*firmlab.Guest{
		{Firmware: firmlab.OVMF, MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x01}, UUID: "7e57b007-0000-4000-8000-000000000001", Name: "uefi"},
		{Firmware: firmlab.SeaBIOSiPXE, MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x02}, UUID: "7e57b007-0000-4000-8000-000000000002", Name: "bios"},
	}
	vms := make([]demoVM, len(guests))
	vctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	start := time.Now()
	for i, g := range guests {
		vms[i] = demoVM{Firmware: string(g.Firmware), MAC: g.MAC.String()}
		if err := fl.StartGuest(vctx, g); err != nil {
			vms[i].Error = err.Error()
		}
	}
	defer func() {
		for _, g := range guests {
			g.Stop()
		}
	}()
	// A guest has booted when the agent that answered it reports a
	// complete transfer to the address it asked from.
	for {
		pending := 0
		decisions, _ := site.Events(vctx, "pxe.decision")
		transfers, _ := site.Events(vctx, "transfer")
		for i := range vms {
			vm := &vms[i]
			if vm.Booted || vm.Error != "" {
				continue
			}
			pending++
			file, agent := "", ""
			for _, e := range decisions {
				var d struct{ Action, Note string }
				json.Unmarshal(e.Detail, &d)
				if e.MAC == vm.MAC && d.Action == "boot" {
					file, agent = d.Note, e.AgentID
				}
			}
			if file == "" {
				continue
			}
			for _, e := range transfers {
				var d struct {
					File, Outcome, Client string
				}
				json.Unmarshal(e.Detail, &d)
				if e.AgentID == agent && d.File == file && d.Outcome == "complete" && !strings.HasPrefix(d.Client, site.Clients.Addr.String()+":") {
					vm.Booted, vm.File, vm.Seconds = true, file, time.Since(start).Seconds()
					for k, a := range site.Agents {
						if h, err := site.Health(vctx, k); err == nil && h.Agent == agent {
							vm.Agent = a.Name
						}
					}
					say("vm %s fetched %s from %s after %.1fs", vm.Firmware, file, vm.Agent, vm.Seconds)
				}
			}
		}
		if pending == 0 {
			return vms
		}
		select {
		case <-vctx.Done():
			for i := range vms {
				if !vms[i].Booted && vms[i].Error == "" {
					vms[i].Error = "no complete boot file download before the deadline"
					vms[i].Seconds = time.Since(start).Seconds()
				}
			}
			return vms
		case <-time.After(500 * time.Millisecond):
		}
	}
}
