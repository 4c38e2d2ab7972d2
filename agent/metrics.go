package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// metric writes one Prometheus sample line.
func metric(b *strings.Builder, name, help, typ string, v any, labels ...string) {
	if help != "" {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=%q", labels[i], labels[i+1])
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(b, " %v\n", v)
}

// Metrics renders the agent's counters in the Prometheus text format.
func (a *Agent) Metrics() string {
	var b strings.Builder
	up := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	metric(&b, "peerboot_agent_ready", "1 when the agent answers clients", "gauge", up(a.ready.Load()))
	metric(&b, "peerboot_agent_central_up", "1 when Central answered the last call", "gauge", up(a.centralUp.Load()))
	if age := a.decider.SetAge(); age >= 0 {
		metric(&b, "peerboot_agent_decision_set_age_seconds", "age of the cached decision set", "gauge", age.Seconds())
	}
	if len(a.engines) > 0 {
		e := a.engineCounters()
		metric(&b, "peerboot_engine_packets_total", "packets by fate", "counter", e.Received, "fate", "received")
		metric(&b, "peerboot_engine_packets_total", "", "", e.Filtered, "fate", "filtered")
		metric(&b, "peerboot_engine_packets_total", "", "", e.DroppedRingFull, "fate", "ring_full")
		metric(&b, "peerboot_engine_packets_total", "", "", e.DroppedKernel, "fate", "kernel_drop")
		metric(&b, "peerboot_engine_packets_total", "", "", e.Malformed, "fate", "malformed")
		metric(&b, "peerboot_engine_packets_total", "", "", e.Ignored, "fate", "ignored")
		metric(&b, "peerboot_engine_packets_total", "", "", e.Sent, "fate", "sent")
		metric(&b, "peerboot_engine_packets_total", "", "", e.SendErrors, "fate", "send_error")
	}
	if len(a.pxes) > 0 {
		p := a.pxeStats()
		metric(&b, "peerboot_pxe_replies_total", "PXE replies written", "counter", p.Offers, "kind", "offer")
		metric(&b, "peerboot_pxe_replies_total", "", "", p.Acks, "kind", "ack")
		metric(&b, "peerboot_pxe_dropped_total", "PXE requests not answered, by reason", "counter", p.NotPXE, "reason", "not_pxe")
		metric(&b, "peerboot_pxe_dropped_total", "", "", p.Malformed, "reason", "malformed")
		metric(&b, "peerboot_pxe_dropped_total", "", "", p.RateLimited, "reason", "rate_limited")
		metric(&b, "peerboot_pxe_dropped_total", "", "", p.Ignored, "reason", "ignored")
		metric(&b, "peerboot_pxe_dropped_total", "", "", p.DecideErrors, "reason", "decide_error")
	}
	d := a.decider.Counters()
	metric(&b, "peerboot_agent_decisions_total", "decisions by source and outcome", "counter", d.FromCentral.Load(), "kind", "central")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.FromCache.Load(), "kind", "cache")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.FromHandoff.Load(), "kind", "handoff_received")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.Deferred.Load(), "kind", "deferred")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.HandedOff.Load(), "kind", "handed_off")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.NoBoot.Load(), "kind", "no_boot")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.Stale.Load(), "kind", "stale_set")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.NoImage.Load(), "kind", "no_image")
	metric(&b, "peerboot_agent_decisions_total", "", "", d.Failovers.Load(), "kind", "failover")
	if a.elector != nil {
		s := a.elector.Stats()
		metric(&b, "peerboot_election_members", "live agents in the subnet view", "gauge", len(a.elector.Members()))
		metric(&b, "peerboot_election_requests_total", "election requests by outcome", "counter", s.Served, "outcome", "served")
		metric(&b, "peerboot_election_requests_total", "", "", s.Deferred, "outcome", "deferred")
		metric(&b, "peerboot_election_requests_total", "", "", s.Failovers, "outcome", "failover")
		metric(&b, "peerboot_election_dropped_total", "election messages dropped", "counter", s.Dropped())
	}
	if a.tftp != nil {
		t := a.tftp.Counters()
		metric(&b, "peerboot_tftp_active_transfers", "TFTP transfers running", "gauge", t.Active)
		metric(&b, "peerboot_tftp_bytes_sent_total", "TFTP DATA payload bytes sent", "counter", t.BytesSent)
		metric(&b, "peerboot_tftp_retransmits_total", "TFTP DATA packets resent", "counter", t.Retransmits)
		metric(&b, "peerboot_tftp_busy_total", "requests refused at max sessions", "counter", t.Busy)
		var outcomes []string
		a.transfers.Range(func(k, _ any) bool { outcomes = append(outcomes, k.(string)); return true })
		sort.Strings(outcomes)
		for i, o := range outcomes {
			v, _ := a.transfers.Load(o)
			help := ""
			if i == 0 {
				help = "finished TFTP transfers by outcome"
			}
			metric(&b, "peerboot_tftp_transfers_total", help, "counter", v.(*atomic.Uint64).Load(), "outcome", o)
		}
	}
	cs := a.cache.Stats()
	metric(&b, "peerboot_cache_bytes", "bytes in the image cache", "gauge", cs.Bytes)
	metric(&b, "peerboot_cache_images_held", "needed images fully cached", "gauge", len(a.cache.Held()))
	metric(&b, "peerboot_cache_downloads_total", "image files downloaded", "counter", cs.Downloads)
	metric(&b, "peerboot_cache_download_failures_total", "image file downloads that failed", "counter", cs.Failures)
	ap, sent := a.spool.Counts()
	metric(&b, "peerboot_events_pending", "events waiting on disk for Central", "gauge", a.spool.Pending())
	metric(&b, "peerboot_events_total", "events by state", "counter", ap, "state", "queued")
	metric(&b, "peerboot_events_total", "", "", sent, "state", "sent")
	return b.String()
}

// Health is the body of /healthz.
type Health struct {
	Ready        bool     `json:"ready"`
	Agent        string   `json:"agent"`
	ElectionID   string   `json:"election_id"`
	Address      string   `json:"address"`
	CentralUp    bool     `json:"central_up"`
	SetAge       float64  `json:"decision_set_age_seconds"`
	ImagesHeld   []string `json:"images_held"`
	ImagesNeeded []string `json:"images_needed"`
	Members      int      `json:"election_members"`
	ReadyMembers int      `json:"election_members_ready"`
	EventsQueued int      `json:"events_pending"`
}

func (a *Agent) health() Health {
	h := Health{
		Ready: a.ready.Load(), Agent: a.st.AgentID, ElectionID: fmt.Sprintf("%016x", uint64(electionID(a.st.AgentID))),
		Address: a.ip.String(), CentralUp: a.centralUp.Load(), SetAge: a.decider.SetAge().Seconds(),
		ImagesHeld: a.cache.Held(), ImagesNeeded: a.cache.Needed(), EventsQueued: a.spool.Pending(),
	}
	if a.elector != nil {
		for _, m := range a.elector.Members() {
			h.Members++
			if m.Ready {
				h.ReadyMembers++
			}
		}
	}
	return h
}

func (a *Agent) startHTTP() (*http.Server, error) {
	if a.cfg.MetricsListen == "" {
		return nil, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, a.Metrics())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := a.health()
		w.Header().Set("Content-Type", "application/json")
		if !h.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	ln, err := net.Listen("tcp", a.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("setting metrics-listen %q: %w", a.cfg.MetricsListen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
