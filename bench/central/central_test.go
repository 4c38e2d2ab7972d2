package centralbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/peerboot/peerboot/central"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/pgtest"
	"github.com/peerboot/peerboot/central/store"
	"github.com/peerboot/peerboot/central/store/postgres"
	"github.com/peerboot/peerboot/central/store/sqlite"
)

const (
	nMachines    = 100_000
	nDeployments = 1_000
	adminToken   = "bench-admin"
	enrollKey    = "bench-enroll"
)

func mac(i int) string {
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", i>>32&0xff, i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
}

// seed fills st with 100,000 machines, 10 images and 1,000 deployments
// (990 to machines, a fifth of them required; 10 for unknown computers).
func seed(b *testing.B, st store.Store) time.Duration {
	ctx := context.Background()
	start := time.Now()
	ms := make([]model.Machine, nMachines)
	for i := range ms {
		ms[i] = model.Machine{ID: fmt.Sprintf("pc%06d", i), Name: fmt.Sprintf("PC %d", i), MAC: mac(i)}
	}
	if err := st.UpsertMachines(ctx, ms); err != nil {
		b.Fatal(err)
	}
	seedTime := time.Since(start)
	for i := range 10 {
		arch := model.ArchX64
		if i%5 == 4 {
			arch = model.ArchX86
		}
		im := model.Image{ID: fmt.Sprintf("PB%06d", i), Arch: arch, Files: []model.ImageFile{{Name: "boot.wim", Size: 1, SHA256: fmt.Sprintf("%064x", i)}}, CreatedAt: time.Now()}
		if err := st.UpsertImage(ctx, im); err != nil {
			b.Fatal(err)
		}
	}
	for i := range nDeployments {
		d := model.Deployment{ID: fmt.Sprintf("d%04d", i), ImageID: fmt.Sprintf("PB%06d", i%10), Required: i%5 == 0, Priority: i % 7, CreatedAt: time.Now()}
		if i < 10 {
			d.UnknownComputers, d.Required = true, false
		} else {
			d.MachineID = fmt.Sprintf("pc%06d", i*97%nMachines)
		}
		if err := st.UpsertDeployment(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	return seedTime
}

type setup struct {
	url, token string
	seedTime   time.Duration
}

// newSetup seeds a store and serves it; everything is torn down by b's
// cleanup (the parent benchmark's, so it outlives the sub-benchmark runs).
func newSetup(b *testing.B, backend string) *setup {
	ctx := context.Background()
	var st store.Store
	var err error
	switch backend {
	case "sqlite":
		st, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "central.db"))
	case "postgres":
		pg := pgtest.Start(b)
		st, err = postgres.Open(ctx, pg.URL(pg.NewDatabase(b)))
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	seedTime := seed(b, st)
	blobs, err := api.NewBlobs(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv := api.New(api.Options{Store: st, Blobs: blobs, AdminTokenHash: api.HashSecret(adminToken), EnrollKeyHash: api.HashSecret(enrollKey), RequiredRepeatWindow: time.Minute})
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	body, _ := json.Marshal(api.EnrollRequest{EnrollmentKey: enrollKey, Host: "bench", Subnets: []string{"198.18.0.0/16"}})
	resp, err := http.Post(hs.URL+"/api/v1/agents/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var er api.EnrollResponse
	json.NewDecoder(resp.Body).Decode(&er)
	resp.Body.Close()
	// Warm up: the first decision builds the in-memory index.
	req, _ := http.NewRequest("POST", hs.URL+"/api/v1/decide", bytes.NewReader([]byte(`{"mac":"02:00:00:00:00:01","arch":"9","peek":true}`)))
	req.Header.Set("Authorization", "Bearer "+er.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	return &setup{url: hs.URL, token: er.Token, seedTime: seedTime}
}

// BenchmarkDecideHTTP: agents asking for boot decisions over keep-alive
// HTTP, 8 concurrent requesters (4 per core). The mix: 45% known machines without a
// deployment, 45% machines with one (a fifth required, consumed on first
// ask), 10% unknown MACs (the unknown-computers deployment).
func BenchmarkDecideHTTP(b *testing.B) {
	central.TuneGC() // the runtime settings `peerboot central` runs with
	for _, backend := range []string{"sqlite", "postgres"} {
		s := newSetup(b, backend)
		b.Run(backend, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			var mu sync.Mutex
			var lat []time.Duration
			var fails atomic.Int64
			var seq atomic.Int64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(uint64(seq.Add(1)), 7))
				local := make([]time.Duration, 0, 4096)
				var buf bytes.Buffer
				for pb.Next() {
					var m string
					switch r := rng.IntN(100); {
					case r < 45:
						m = mac(rng.IntN(nMachines))
					case r < 90:
						m = mac((10 + rng.IntN(nDeployments-10)) * 97 % nMachines)
					default:
						m = mac(nMachines + rng.IntN(1<<30))
					}
					buf.Reset()
					fmt.Fprintf(&buf, `{"mac":%q,"arch":"bios-x64","subnet":"198.18.4.0/24"}`, m)
					req, _ := http.NewRequest("POST", s.url+"/api/v1/decide", bytes.NewReader(buf.Bytes()))
					req.Header.Set("Authorization", "Bearer "+s.token)
					req.Header.Set("Content-Type", "application/json")
					t0 := time.Now()
					resp, err := hc.Do(req)
					if err != nil {
						fails.Add(1)
						continue
					}
					var d struct {
						Reason string `json:"reason"`
					}
					json.NewDecoder(resp.Body).Decode(&d)
					resp.Body.Close()
					local = append(local, time.Since(t0))
					if resp.StatusCode != 200 || d.Reason == "" {
						fails.Add(1)
					}
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if f := fails.Load(); f > 0 {
				b.Fatalf("%d failed decisions", f)
			}
			slices.Sort(lat)
			p := func(q float64) float64 {
				if len(lat) == 0 {
					return 0
				}
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
			b.ReportMetric(p(0.50), "p50-ms")
			b.ReportMetric(p(0.99), "p99-ms")
			b.ReportMetric(s.seedTime.Seconds(), "seed-100k-s")
		})
	}
}
