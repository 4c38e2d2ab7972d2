package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	pxebench "github.com/peerboot/peerboot/bench/pxe"
)

func init() {
	register(command{name: "loadgen", summary: "simulate PXE clients and measure a ProxyDHCP server", run: runLoadgen})
}

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", stderr)
	iface := fs.String("interface", "", "interface to send raw frames on (required; root)")
	clients := fs.Int("clients", 16, "simulated PXE clients (distinct MACs, GUIDs and architectures)")
	duration := fs.Duration("duration", 5*time.Second, "how long to run")
	timeout := fs.Duration("timeout", time.Second, "how long a client waits for each reply")
	clientNet := fs.String("client-net", "198.18.0.0/16", "addresses the clients claim (inside 198.18.0.0/15)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *iface == "" {
		return fmt.Errorf("%w: --interface is required", errUsage)
	}
	p, err := netip.ParsePrefix(*clientNet)
	if err != nil {
		return fmt.Errorf("%w: --client-net: %v", errUsage, err)
	}
	r, err := pxebench.Run(ctx, pxebench.Config{Interface: *iface, Clients: *clients, Duration: *duration,
		Timeout: *timeout, ClientNet: p})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	_, err = fmt.Fprintln(stdout, r.String())
	return err
}
