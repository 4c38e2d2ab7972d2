package api

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics is a tiny Prometheus text-format registry: labelled counters and
// one latency histogram, enough for Central without a dependency.
type metrics struct {
	mu       sync.Mutex
	counters map[string]*atomic.Int64 // full series name with labels -> value
	help     map[string]string

	decideBuckets []float64 // seconds
	decideCounts  []atomic.Int64
	decideSumNS   atomic.Int64
	decideCount   atomic.Int64
}

func newMetrics() *metrics {
	b := []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1}
	return &metrics{
		counters:      map[string]*atomic.Int64{},
		decideBuckets: b,
		decideCounts:  make([]atomic.Int64, len(b)),
		help: map[string]string{
			"peerboot_central_http_requests_total":   "HTTP requests by route and status code.",
			"peerboot_central_decisions_total":       "Boot decisions by outcome.",
			"peerboot_central_events_total":          "Agent events received, by whether they were new.",
			"peerboot_central_index_rebuilds_total":  "Rebuilds of the in-memory decision index.",
			"peerboot_central_blob_bytes_sent_total": "Boot image bytes sent to agents.",
			"peerboot_central_longpolls_total":       "Decision-set requests that waited for a change.",
		},
	}
}

// add adds n to the counter name{labels}; labels are "k", "v" pairs.
func (m *metrics) add(n int64, name string, labels ...string) {
	key := name
	if len(labels) > 0 {
		var b strings.Builder
		b.WriteString(name)
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
		}
		b.WriteByte('}')
		key = b.String()
	}
	m.mu.Lock()
	c := m.counters[key]
	if c == nil {
		c = new(atomic.Int64)
		m.counters[key] = c
	}
	m.mu.Unlock()
	c.Add(n)
}

func (m *metrics) observeDecide(d time.Duration) {
	s := d.Seconds()
	for i, b := range m.decideBuckets {
		if s <= b {
			m.decideCounts[i].Add(1)
		}
	}
	m.decideSumNS.Add(int64(d))
	m.decideCount.Add(1)
}

// write renders every series in the Prometheus text exposition format.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	keys := make([]string, 0, len(m.counters))
	for k := range m.counters {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.Sort(keys)
	last := ""
	for _, k := range keys {
		name, _, _ := strings.Cut(k, "{")
		if name != last {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, m.help[name], name)
			last = name
		}
		m.mu.Lock()
		v := m.counters[k].Load()
		m.mu.Unlock()
		fmt.Fprintf(w, "%s %d\n", k, v)
	}
	const h = "peerboot_central_decision_duration_seconds"
	fmt.Fprintf(w, "# HELP %s Time to answer a boot decision request.\n# TYPE %s histogram\n", h, h)
	for i, b := range m.decideBuckets {
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", h, b, m.decideCounts[i].Load())
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", h, m.decideCount.Load())
	fmt.Fprintf(w, "%s_sum %g\n", h, time.Duration(m.decideSumNS.Load()).Seconds())
	fmt.Fprintf(w, "%s_count %d\n", h, m.decideCount.Load())
}
