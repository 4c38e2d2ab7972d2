package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/peerboot/peerboot/agent"
	"github.com/peerboot/peerboot/agent/config"
	"github.com/peerboot/peerboot/agent/responder"
	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/rawsock"
	"github.com/peerboot/peerboot/pxe"
)

func init() {
	register(command{name: "responder", summary: "answer relayed PXE DISCOVERs on DHCP-snooping networks (referral or forward to agents)", run: runResponder})
}

type responderConfig struct {
	Interface, ServerIP, CentralURL, CentralToken, Mode string
	CentralCA                                           string
	SnoopServerPort, SnoopClientPort, Workers           int
	MetricsListen, LogFormat, LogLevel, Config          string
}

func runResponder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c responderConfig
	fs := flag.NewFlagSet("peerboot responder", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Interface, "interface", "", "interface relays reach the responder on (required)")
	fs.StringVar(&c.ServerIP, "server-ip", "", "the responder's IPv4 address (default: the interface's first)")
	fs.StringVar(&c.CentralURL, "central-url", "", "Central's base URL (required)")
	fs.StringVar(&c.CentralToken, "central-token", "", "token for Central: the admin token or an agent's token (required)")
	fs.StringVar(&c.CentralCA, "central-ca", "", "PEM file of the CA Central's TLS certificate is checked against (default: the system's)")
	fs.StringVar(&c.Mode, "mode", "referral", "referral: refer clients to an agent of their subnet; forward: pass requests to the agents on the snoop ports")
	fs.IntVar(&c.SnoopServerPort, "snoop-server-port", 2067, "forward mode: port agents listen on")
	fs.IntVar(&c.SnoopClientPort, "snoop-client-port", 2068, "forward mode: port agents answer on")
	fs.IntVar(&c.Workers, "workers", 8, "packet handler goroutines (referral mode)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9121", "ADDR:PORT for /metrics and /healthz (empty: off)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Config, "config", "", "configuration file of name = value lines (the flag names)")
	if err := config.LoadFlagSet(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: peerboot responder --interface IF --central-url URL --central-token TOKEN [--mode referral|forward]")
			fmt.Fprintln(stderr, "Each flag NAME may also be set as PEERBOOT_NAME or as \"name = value\" in the config file.")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		if errors.Is(err, config.ErrUsage) {
			return fmt.Errorf("%w: %s", errUsage, strings.TrimPrefix(err.Error(), config.ErrUsage.Error()+": "))
		}
		return err
	}
	switch {
	case c.Interface == "":
		return fmt.Errorf("%w: setting interface (--interface, PEERBOOT_INTERFACE) is required", errUsage)
	case c.CentralURL == "":
		return fmt.Errorf("%w: setting central-url (--central-url, PEERBOOT_CENTRAL_URL) is required", errUsage)
	case c.CentralToken == "":
		return fmt.Errorf("%w: setting central-token (--central-token, PEERBOOT_CENTRAL_TOKEN) is required", errUsage)
	case c.Mode != "referral" && c.Mode != "forward":
		return fmt.Errorf("%w: setting mode (--mode, PEERBOOT_MODE): %q is neither referral nor forward", errUsage, c.Mode)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("%w: setting log-format (--log-format, PEERBOOT_LOG_FORMAT): %q is neither text nor json", errUsage, c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("%w: setting log-level (--log-level, PEERBOOT_LOG_LEVEL): %q", errUsage, c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	log := slog.New(slog.NewTextHandler(stderr, opts))
	if c.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(stderr, opts))
	}
	self, err := agentAddress(agentConfig{Interface: c.Interface, ServerIP: c.ServerIP})
	if err != nil {
		return err
	}
	hc, err := agent.CentralHTTPClient(c.CentralCA)
	if err != nil {
		return err
	}
	cl := client.New(c.CentralURL, c.CentralToken, hc)
	cl.Retries = 0
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var probe []any
	err = cl.Do(hctx, "GET", "/api/v1/agents", nil, &probe)
	cancel()
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return fmt.Errorf("Central %s refused the responder: %s", c.CentralURL, ce.Message)
		}
		return fmt.Errorf("cannot reach Central at %s: %s", c.CentralURL, agent.RootCause(err))
	}
	ref := &responder.Referrer{Central: cl, Log: log}
	metrics := func(w io.Writer) {}
	var serve func(ctx context.Context) error
	if c.Mode == "forward" {
		fw := &responder.Forwarder{Agents: ref, Self: self, ServerPort: c.SnoopServerPort, ClientPort: c.SnoopClientPort, Log: log}
		in, err := net.ListenUDP("udp4", &net.UDPAddr{Port: pxe.PortDHCPServer})
		if err != nil {
			return fmt.Errorf("port 67: %w", err)
		}
		back, err := net.ListenUDP("udp4", &net.UDPAddr{IP: self.AsSlice(), Port: c.SnoopClientPort})
		if err != nil {
			in.Close()
			return fmt.Errorf("port %d: %w", c.SnoopClientPort, err)
		}
		serve = func(ctx context.Context) error { return fw.Serve(ctx, in, back) }
		metrics = func(w io.Writer) {
			fmt.Fprintf(w, "peerboot_responder_forwarded_total %d\npeerboot_responder_answered_total %d\n", fw.Forwarded.Load(), fw.Answered.Load())
			fmt.Fprintf(w, "peerboot_responder_dropped_total{reason=\"not_pxe\"} %d\npeerboot_responder_dropped_total{reason=\"not_relayed\"} %d\n", fw.NotPXE.Load(), fw.NotRelayed.Load())
			fmt.Fprintf(w, "peerboot_responder_dropped_total{reason=\"no_agent\"} %d\npeerboot_responder_dropped_total{reason=\"unmatched\"} %d\n", fw.NoAgent.Load(), fw.Unmatched.Load())
		}
	} else {
		srv, err := pxe.New(ctx, pxe.Config{ServerIP: self, Decider: ref, Logger: log, PerMACRate: 4, PerMACBurst: 8, GlobalRate: 20000, GlobalBurst: 2000})
		if err != nil {
			return err
		}
		sock, err := rawsock.Open(rawsock.Config{Interface: c.Interface, Ports: []uint16{pxe.PortDHCPServer, pxe.PortBootServer}, SourceIP: self})
		if err != nil {
			return fmt.Errorf("packet socket on %s: %w", c.Interface, err)
		}
		// Bound UDP sockets keep the kernel from answering with ICMP port
		// unreachable; the raw socket does the work.
		var sinks []net.PacketConn
		for _, p := range []int{pxe.PortDHCPServer, pxe.PortBootServer} {
			s, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", p))
			if err != nil {
				sock.Close()
				return fmt.Errorf("port %d: %w", p, err)
			}
			sinks = append(sinks, s)
		}
		eng, err := engine.New(engine.Config{Socket: sock, Handler: srv, Workers: c.Workers, Logger: log})
		if err != nil {
			sock.Close()
			return err
		}
		serve = func(ctx context.Context) error {
			defer func() {
				for _, s := range sinks {
					s.Close()
				}
			}()
			return eng.Run(ctx)
		}
		metrics = func(w io.Writer) {
			st := srv.Stats()
			fmt.Fprintf(w, "peerboot_responder_referred_total %d\npeerboot_pxe_replies_total{kind=\"offer\"} %d\npeerboot_pxe_replies_total{kind=\"ack\"} %d\n", ref.Referred.Load(), st.Offers, st.Acks)
			fmt.Fprintf(w, "peerboot_pxe_dropped_total{reason=\"not_pxe\"} %d\npeerboot_responder_dropped_total{reason=\"not_relayed\"} %d\n", st.NotPXE, ref.NotRelayed.Load())
			fmt.Fprintf(w, "peerboot_responder_dropped_total{reason=\"no_agent\"} %d\npeerboot_responder_dropped_total{reason=\"no_boot\"} %d\npeerboot_responder_errors_total %d\n", ref.NoAgent.Load(), ref.NoBoot.Load(), ref.Errors.Load())
		}
	}
	if c.MetricsListen != "" {
		ln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return fmt.Errorf("setting metrics-listen %q: %w", c.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { metrics(w) })
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
	}
	log.Info("responder ready", "mode", c.Mode, "interface", c.Interface, "address", self, "central", c.CentralURL)
	err = serve(ctx)
	log.Info("responder stopped")
	return err
}
