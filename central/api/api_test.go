package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
	"github.com/peerboot/peerboot/central/store/sqlite"
)

const (
	adminToken = "admin-token-for-tests"
	enrollKey  = "enroll-key-for-tests"
)

type env struct {
	srv   *api.Server
	url   string
	admin *client.Client
	blobs string
}

func startServer(t *testing.T, st store.Store, blobDir string) *env {
	t.Helper()
	blobs, err := api.NewBlobs(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Store: st, Blobs: blobs, AdminTokenHash: api.HashSecret(adminToken), EnrollKeyHash: api.HashSecret(enrollKey)})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{srv: srv, url: hs.URL, admin: client.New(hs.URL, adminToken, nil), blobs: blobDir}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startServer(t, st, filepath.Join(t.TempDir(), "blobs"))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantAPIError checks an error's status and the field it names.
func wantAPIError(t *testing.T, err error, status int, field string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want a %d API error", err, status)
	}
	if e.Status != status || e.Field != field {
		t.Fatalf("error = %d field %q (%s), want %d field %q", e.Status, e.Field, e.Message, status, field)
	}
}

// clientFor returns a client for replica e using the token of c.
func clientFor(e *env, c *client.Client) *client.Client {
	return client.New(e.url, c.Token(), nil)
}

func (e *env) enroll(t *testing.T, host string, subnets ...string) *client.Client {
	t.Helper()
	c := client.New(e.url, "", nil)
	_, err := c.Enroll(context.Background(), api.EnrollRequest{EnrollmentKey: enrollKey, Host: host, Subnets: subnets, Weight: 50})
	must(t, err)
	return c
}

// seed uploads a one-file x64 image and returns its id.
func (e *env) seedImage(t *testing.T, id string, arch model.Arch, content []byte) model.Image {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(content)
	hexsum := hex.EncodeToString(sum[:])
	req, _ := http.NewRequest("PUT", e.url+"/api/v1/blobs/"+hexsum, bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("blob upload: %s", resp.Status)
	}
	var im model.Image
	must(t, e.admin.Do(ctx, "POST", "/api/v1/images", model.Image{ID: id, Arch: arch, Files: []model.ImageFile{{Name: "boot.wim", SHA256: hexsum}}}, &im))
	return im
}

func TestEnrollHeartbeatAndAgentsPerSubnet(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := client.New(e.url, "", nil).Enroll(ctx, api.EnrollRequest{EnrollmentKey: "wrong", Host: "x"})
	wantAPIError(t, err, 401, "enrollment_key")
	_, err = client.New(e.url, "", nil).Enroll(ctx, api.EnrollRequest{EnrollmentKey: enrollKey, Host: "x", Subnets: []string{"not-a-subnet"}})
	wantAPIError(t, err, 400, "subnets[0]")
	a := e.enroll(t, "pc-a", "198.18.1.0/24")
	e.enroll(t, "pc-b", "198.18.2.0/24")
	got, err := a.Heartbeat(ctx, api.Heartbeat{Subnets: []string{"198.18.1.0/24"}, Addresses: []string{"198.18.1.10"}, Weight: 70, Load: 0.25, Images: []string{"IMG1"}})
	must(t, err)
	if got.Weight != 70 || got.Host != "pc-a" {
		t.Fatalf("heartbeat answer %+v", got)
	}
	var agents []model.Agent
	must(t, e.admin.Do(ctx, "GET", "/api/v1/agents?subnet=198.18.1.0/24", nil, &agents))
	if len(agents) != 1 || agents[0].Host != "pc-a" || agents[0].Load != 0.25 || agents[0].Images[0] != "IMG1" {
		t.Fatalf("agents on 198.18.1.0/24 = %+v", agents)
	}
	// An agent token cannot do admin writes; no token cannot do anything.
	wantAPIError(t, a.Do(ctx, "POST", "/api/v1/machines", model.Machine{MAC: "02:00:00:00:00:01"}, nil), 403, "")
	wantAPIError(t, client.New(e.url, "", nil).Do(ctx, "POST", "/api/v1/decide", api.DecideRequest{MAC: "02:00:00:00:00:01", Arch: "uefi-x64"}, nil), 401, "")
	wantAPIError(t, client.New(e.url, "bogus", nil).Do(ctx, "GET", "/api/v1/events", nil, nil), 401, "")
}

func TestRequiredRunsOnceUntilCleared(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.enroll(t, "pc-a", "198.18.1.0/24")
	e.seedImage(t, "IMG64", model.ArchX64, []byte("x64 image"))
	e.seedImage(t, "IMG86", model.ArchX86, []byte("x86 image"))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/machines", model.Machine{ID: "pc1", Name: "PC 1", MAC: "02-00-00-00-00-01"}, nil))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "d-req", MachineID: "pc1", ImageID: "IMG64", Required: true}, nil))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "d-av", MachineID: "pc1", ImageID: "IMG86", Priority: 5}, nil))
	ask := func(arch string) api.DecideRequest {
		return api.DecideRequest{MAC: "02:00:00:00:00:01", GUID: "00000000-0000-0000-0000-000000000000", Arch: arch, Subnet: "198.18.1.0/24"}
	}
	d, err := agent.Decide(ctx, ask("uefi-x64"))
	must(t, err)
	if !d.Boot || !d.Required || d.ImageID != "IMG64" {
		t.Fatalf("first decision %+v, want required IMG64", d)
	}
	// Run once: now the available deployment wins (BIOS x64 may take x86).
	d, err = agent.Decide(ctx, ask("bios-x64"))
	must(t, err)
	if !d.Boot || d.Required || d.DeploymentID != "d-av" {
		t.Fatalf("second decision %+v, want available d-av", d)
	}
	// UEFI x64 cannot take the x86 image: nothing.
	d, err = agent.Decide(ctx, ask("uefi-x64"))
	must(t, err)
	if d.Boot {
		t.Fatalf("UEFI x64 got %+v after the required deployment ran", d)
	}
	var cr api.ClearResult
	must(t, e.admin.Do(ctx, "POST", "/api/v1/machines/pc1/clear-required", nil, &cr))
	if cr.Cleared != 1 {
		t.Fatalf("clear = %+v", cr)
	}
	d, err = agent.Decide(ctx, ask("uefi-x64"))
	must(t, err)
	if !d.Required || d.DeploymentID != "d-req" {
		t.Fatalf("after clear: %+v, want required again", d)
	}
	// Ignored MACs get nothing.
	must(t, e.admin.Do(ctx, "PUT", "/api/v1/ignored-macs/02:00:00:00:00:01", nil, nil))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/machines/pc1/clear-required", nil, nil))
	d, err = agent.Decide(ctx, ask("uefi-x64"))
	must(t, err)
	if d.Boot {
		t.Fatalf("ignored MAC got %+v", d)
	}
	var metrics bytes.Buffer
	resp, err := http.Get(e.url + "/metrics")
	must(t, err)
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`peerboot_central_decisions_total{outcome="required"} 2`, `peerboot_central_decisions_total{outcome="ignored"} 1`, "peerboot_central_decision_duration_seconds_count 5"} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics.String())
		}
	}
}

func TestInvalidInputNamesTheField(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seedImage(t, "IMG64", model.ArchX64, []byte("img"))
	cases := []struct {
		method, path string
		body         any
		status       int
		field        string
	}{
		{"POST", "/api/v1/machines", map[string]any{"mac": "zz:zz"}, 400, "mac"},
		{"POST", "/api/v1/machines", map[string]any{"guid": "1234"}, 400, "guid"},
		{"POST", "/api/v1/machines", map[string]any{"id": "a/b", "mac": "02:00:00:00:00:01"}, 400, "id"},
		{"POST", "/api/v1/machines", map[string]any{"mac": 7}, 400, "mac"},
		{"POST", "/api/v1/machines", map[string]any{"mac": "02:00:00:00:00:01", "colour": "red"}, 400, "body"},
		{"POST", "/api/v1/deployments", map[string]any{"image_id": "IMG64"}, 400, "machine_id"},
		{"POST", "/api/v1/deployments", map[string]any{"unknown_computers": true}, 400, "image_id"},
		{"POST", "/api/v1/deployments", map[string]any{"unknown_computers": true, "image_id": "NOPE"}, 422, "image_id"},
		{"POST", "/api/v1/deployments", map[string]any{"machine_id": "ghost", "image_id": "IMG64"}, 422, "machine_id"},
		{"POST", "/api/v1/deployments", map[string]any{"unknown_computers": true, "image_id": "IMG64", "subnets": []string{"x"}}, 400, "subnets[0]"},
		{"POST", "/api/v1/images", map[string]any{"id": "I2", "arch": "mips", "files": []any{}}, 400, "arch"},
		{"POST", "/api/v1/images", map[string]any{"id": "I2", "arch": "x64", "files": []any{map[string]any{"name": "a", "sha256": strings.Repeat("ab", 32)}}}, 422, "files[0].sha256"},
		{"POST", "/api/v1/decide", map[string]any{"mac": "02:00:00:00:00:01", "arch": "sparc"}, 400, "arch"},
		{"POST", "/api/v1/decide", map[string]any{"arch": "uefi-x64"}, 400, "mac"},
		{"POST", "/api/v1/decide", map[string]any{"mac": "02:00:00:00:00:01", "arch": "9", "subnet": "nope"}, 400, "subnet"},
		{"POST", "/api/v1/images/register", map[string]any{"id": "R", "arch": "x64", "dir": "relative"}, 400, "dir"},
		{"PUT", "/api/v1/ignored-macs/bad", nil, 400, "mac"},
		{"GET", "/api/v1/events?limit=0", nil, 400, "limit"},
		{"GET", "/api/v1/decision-set?wait=5m", nil, 400, "wait"},
		{"DELETE", "/api/v1/machines/ghost", nil, 404, ""},
	}
	for _, tc := range cases {
		err := e.admin.Do(ctx, tc.method, tc.path, tc.body, nil)
		t.Run(tc.method+" "+tc.path+" "+tc.field, func(t *testing.T) { wantAPIError(t, err, tc.status, tc.field) })
	}
	// Bodies over the limit are refused with 413.
	big := map[string]string{"name": strings.Repeat("x", 2<<20), "mac": "02:00:00:00:00:01"}
	wantAPIError(t, e.admin.Do(ctx, "POST", "/api/v1/machines", big, nil), 413, "")
	// A deployed image cannot be deleted.
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{UnknownComputers: true, ImageID: "IMG64"}, nil))
	wantAPIError(t, e.admin.Do(ctx, "DELETE", "/api/v1/images/IMG64", nil, nil), 409, "")
}

func TestEventsAreIdempotentAndConsumeRequired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.enroll(t, "pc-a", "198.18.1.0/24")
	e.seedImage(t, "IMG64", model.ArchX64, []byte("img"))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "unk", UnknownComputers: true, ImageID: "IMG64", Required: true}, nil))
	batch := []model.Event{
		{ID: "ev-1", Type: model.EventPXEBoot, MAC: "02:00:00:00:00:77", Subnet: "198.18.1.0/24", ImageID: "IMG64", DeploymentID: "unk", Required: true, Detail: json.RawMessage(`{"served_by":"local decision set"}`)},
		{ID: "ev-2", Type: model.EventTransfer, Detail: json.RawMessage(`{"bytes":123456,"seconds":0.5}`)},
	}
	res, err := agent.PostEvents(ctx, batch)
	must(t, err)
	if res.Accepted != 2 || res.Duplicates != 0 {
		t.Fatalf("first post %+v", res)
	}
	res, err = agent.PostEvents(ctx, batch)
	must(t, err)
	if res.Accepted != 0 || res.Duplicates != 2 {
		t.Fatalf("retried post %+v, want 0 accepted 2 duplicates", res)
	}
	var evs []model.Event
	must(t, e.admin.Do(ctx, "GET", "/api/v1/events", nil, &evs))
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	// The boot the agent served locally consumed the required deployment.
	d, err := agent.Decide(ctx, api.DecideRequest{MAC: "02:00:00:00:00:77", Arch: "uefi-x64"})
	must(t, err)
	if d.Boot {
		t.Fatalf("decision after a reported required boot: %+v", d)
	}
	var cr api.ClearResult
	must(t, e.admin.Do(ctx, "POST", "/api/v1/clear-required", api.ClearRequest{MAC: "02:00:00:00:00:77"}, &cr))
	if cr.Cleared != 1 || cr.ClientKey != "mac:02:00:00:00:00:77" {
		t.Fatalf("clear unknown computer: %+v", cr)
	}
	// The admin is not an agent: posting events needs an agent token.
	wantAPIError(t, e.admin.Do(ctx, "POST", "/api/v1/events", api.EventBatch{Events: batch}, nil), 403, "")
	_, err = agent.PostEvents(ctx, []model.Event{{ID: "x", Type: "", MAC: "02:00:00:00:00:01"}})
	wantAPIError(t, err, 400, "events[0].type")
	var subnets []api.SubnetSummary
	must(t, e.admin.Do(ctx, "GET", "/api/v1/subnets", nil, &subnets))
	if len(subnets) != 1 || len(subnets[0].Agents) != 1 || len(subnets[0].Boots) != 1 {
		t.Fatalf("subnets = %+v", subnets)
	}
	for id, n := range subnets[0].Served {
		if id != subnets[0].Agents[0].ID || n != 1 {
			t.Fatalf("served = %v", subnets[0].Served)
		}
	}
}

func TestOfflineBootDecisionConsumesRequired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.enroll(t, "pc-a", "198.18.1.0/24")
	e.seedImage(t, "IMG64", model.ArchX64, []byte("img"))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "unk", UnknownComputers: true, ImageID: "IMG64", Required: true}, nil))
	batch := []model.Event{
		// A decision that did not boot the client consumes nothing.
		{ID: "ev-none", Type: model.EventPXEDecision, MAC: "02:00:00:00:00:78", ImageID: "IMG64", DeploymentID: "unk", Required: true, Detail: json.RawMessage(`{"action":"no-image","source":"cache"}`)},
	}
	_, err := agent.PostEvents(ctx, batch)
	must(t, err)
	d, err := agent.Decide(ctx, api.DecideRequest{MAC: "02:00:00:00:00:78", Arch: "uefi-x64"})
	must(t, err)
	if !d.Boot {
		t.Fatalf("a no-image decision consumed the required deployment: %+v", d)
	}
	// The agent booted the client from its cached decision set while
	// Central was unreachable; the event consumes the deployment.
	batch = []model.Event{
		{ID: "ev-boot", Type: model.EventPXEDecision, MAC: "02:00:00:00:00:77", ImageID: "IMG64", DeploymentID: "unk", Required: true, Detail: json.RawMessage(`{"action":"boot","source":"cache"}`)},
	}
	_, err = agent.PostEvents(ctx, batch)
	must(t, err)
	d, err = agent.Decide(ctx, api.DecideRequest{MAC: "02:00:00:00:00:77", Arch: "uefi-x64"})
	must(t, err)
	if d.Boot {
		t.Fatalf("decision after an offline required boot: %+v", d)
	}
}

func TestDecisionSetETagAndLongPoll(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.enroll(t, "pc-a", "198.18.1.0/24")
	e.seedImage(t, "IMG64", model.ArchX64, []byte("img"))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "here", UnknownComputers: true, ImageID: "IMG64", Subnets: []string{"198.18.1.0/24"}}, nil))
	must(t, e.admin.Do(ctx, "POST", "/api/v1/deployments", model.Deployment{ID: "elsewhere", UnknownComputers: true, ImageID: "IMG64", Subnets: []string{"198.18.9.0/24"}}, nil))
	set, etag, err := agent.DecisionSet(ctx, []string{"198.18.1.0/24"}, "", 0)
	must(t, err)
	if set == nil || etag == "" || len(set.Config.Deployments) != 1 || set.Config.Deployments[0].ID != "here" {
		t.Fatalf("decision set %+v etag %q", set, etag)
	}
	set, etag2, err := agent.DecisionSet(ctx, []string{"198.18.1.0/24"}, etag, 0)
	must(t, err)
	if set != nil || etag2 != etag {
		t.Fatalf("unchanged set with If-None-Match: got %v %q, want 304", set, etag2)
	}
	type result struct {
		set  *api.DecisionSet
		etag string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		s, tag, err := agent.DecisionSet(ctx, []string{"198.18.1.0/24"}, etag, 30*time.Second)
		ch <- result{s, tag, err}
	}()
	// Wait until the long-poll is parked, then change the config.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, e.url), "peerboot_central_longpolls_total 1") {
		if time.Now().After(deadline) {
			t.Fatal("long-poll never parked")
		}
		select {
		case r := <-ch:
			t.Fatalf("long-poll returned before any change: %+v", r)
		case <-time.After(10 * time.Millisecond):
		}
	}
	must(t, e.admin.Do(ctx, "POST", "/api/v1/machines", model.Machine{ID: "new", MAC: "02:00:00:00:00:42"}, nil))
	select {
	case r := <-ch:
		must(t, r.err)
		if r.set == nil || r.etag == etag || len(r.set.Config.Machines) != 1 {
			t.Fatalf("long-poll after change: %+v %q", r.set, r.etag)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long-poll did not return after a change")
	}
}

func scrape(t *testing.T, url string) string {
	resp, err := http.Get(url + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func TestImageDownloadResumesAndVerifies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.enroll(t, "pc-a", "198.18.1.0/24")
	content := bytes.Repeat([]byte("peerboot boot image block\n"), 40000) // ~1 MB
	im := e.seedImage(t, "IMG64", model.ArchX64, content)
	sum := im.Files[0].SHA256
	dir := t.TempDir()
	// A previous attempt left the first 300000 bytes.
	dst := filepath.Join(dir, "boot.wim")
	must(t, os.WriteFile(dst+".part", content[:300000], 0o644))
	before := scrape(t, e.url)
	must(t, agent.Download(ctx, sum, dst))
	got, err := os.ReadFile(dst)
	must(t, err)
	if !bytes.Equal(got, content) {
		t.Fatal("downloaded file differs")
	}
	if !strings.Contains(before+scrape(t, e.url), `code="206"} 1`) {
		t.Error("resume did not use a range request (no 206 counted)")
	}
	// A corrupt partial file fails verification and is removed.
	bad := append([]byte("XXXX"), content[4:300000]...)
	dst2 := filepath.Join(dir, "boot2.wim")
	must(t, os.WriteFile(dst2+".part", bad, 0o644))
	err = agent.Download(ctx, sum, dst2)
	if !errors.Is(err, client.ErrChecksum) {
		t.Fatalf("corrupt resume: err = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(dst2 + ".part"); !os.IsNotExist(err) {
		t.Fatal("corrupt partial file kept")
	}
	must(t, agent.Download(ctx, sum, dst2)) // starts over
	// Range requests straight on the image file URL.
	req, _ := http.NewRequest("GET", e.url+"/api/v1/images/IMG64/files/boot.wim", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	var part bytes.Buffer
	part.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(part.Bytes(), content[10:20]) {
		t.Fatalf("range: %s %q", resp.Status, part.String())
	}
	// A blob upload whose body does not match its name is refused.
	req, _ = http.NewRequest("PUT", e.url+"/api/v1/blobs/"+sum, strings.NewReader("other"))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("mismatched upload: %s", resp.Status)
	}
}

func TestRegisterImageFromDirectory(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "boot.wim"), []byte("wim"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "BCD"), []byte("bcd"), 0o644))
	var im model.Image
	must(t, e.admin.Do(context.Background(), "POST", "/api/v1/images/register", api.RegisterRequest{ID: "PB100001", Arch: model.ArchX64, Dir: dir}, &im))
	if len(im.Files) != 2 || im.Files[0].Name != "BCD" || im.Files[1].Size != 3 {
		t.Fatalf("registered %+v", im)
	}
	sum := sha256.Sum256([]byte("wim"))
	if im.Files[1].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("boot.wim sha256 = %s", im.Files[1].SHA256)
	}
}

func TestCSVImport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	post := func(csv string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("POST", e.url+"/api/v1/machines/import", strings.NewReader(csv))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	resp, body := post("name,mac,guid\nPC-1,02:00:00:00:00:01,\nPC-2,02-00-00-00-00-02,00000000-0000-0000-0000-000000000000\nPC-3,,{33333333-2222-3333-4444-555555555555}\n")
	if resp.StatusCode != 200 || body["imported"] != float64(3) {
		t.Fatalf("import: %s %v", resp.Status, body)
	}
	var ms []model.Machine
	must(t, e.admin.Do(ctx, "GET", "/api/v1/machines", nil, &ms))
	if len(ms) != 3 || ms[1].ID != "PC-2" || ms[1].GUID != "" || ms[2].GUID != "33333333-2222-3333-4444-555555555555" {
		t.Fatalf("imported machines %+v", ms)
	}
	resp, body = post("name,mac\nok,02:00:00:00:00:05\nbad,02:00:zz\n")
	if resp.StatusCode != 400 || body["field"] != "csv" || !strings.Contains(body["error"].(string), "line 3") {
		t.Fatalf("bad csv: %s %v", resp.Status, body)
	}
	resp, _ = post("colour\nred\n")
	if resp.StatusCode != 400 {
		t.Fatalf("unknown column: %s", resp.Status)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/healthz")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %s", resp.Status)
	}
}
