package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store/sqlite"
	"github.com/peerboot/peerboot/central/web"
)

// webDriver is a minimal W3C WebDriver client for chromedriver.
type webDriver struct {
	t       *testing.T
	base    string
	session string
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf" // the W3C web element identifier

func (d *webDriver) call(method, path string, in any) json.RawMessage {
	d.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
		d.t.Fatalf("webdriver %s %s: %s %s", method, path, resp.Status, raw)
	}
	return out.Value
}

func (d *webDriver) sess(path string) string { return "/session/" + d.session + path }

func (d *webDriver) find(css string) string {
	d.t.Helper()
	var el map[string]string
	raw := d.call("POST", d.sess("/element"), map[string]string{"using": "css selector", "value": css})
	json.Unmarshal(raw, &el)
	if el[elementKey] == "" {
		el[elementKey] = el["ELEMENT"] // legacy (non-W3C) answer
	}
	if el[elementKey] == "" {
		d.t.Fatalf("element %q not found in %s", css, d.source())
	}
	return el[elementKey]
}

func (d *webDriver) text(css string) string {
	var s string
	json.Unmarshal(d.call("GET", d.sess("/element/"+d.find(css)+"/text"), nil), &s)
	return s
}

func (d *webDriver) source() string {
	var s string
	json.Unmarshal(d.call("GET", d.sess("/source"), nil), &s)
	return s
}

func startChrome(t *testing.T) *webDriver {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromedriver"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("need Debian packages chromium and chromium-driver: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("/usr/bin/chromedriver", fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.base + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control, bounded by the deadline
	}
	profile := t.TempDir()
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": "/usr/bin/chromium",
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile, "--window-size=1280,1600"},
		},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(d.call("POST", "/session", caps), &created)
	if created.SessionID == "" {
		t.Fatal("no webdriver session")
	}
	d.session = created.SessionID
	// Finding an element waits (up to 10 s) for it to appear, so a check
	// right after a click that loads a new page sees the new page.
	d.call("POST", d.sess("/timeouts"), map[string]int{"implicit": 10000})
	t.Cleanup(func() {
		req, _ := http.NewRequest("DELETE", d.base+d.sess(""), nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return d
}

// TestClearButtonInChromium loads the page in headless Chromium, logs in
// with the admin token, clicks "clear" on a machine whose required
// deployment ran, and sees the state change (on the page and in the store).
func TestClearButtonInChromium(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, err := api.NewBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const token = "web-admin-token"
	srv := api.New(api.Options{Store: st, Blobs: blobs, AdminTokenHash: api.HashSecret(token), EnrollKeyHash: api.HashSecret("k")})
	mux := http.NewServeMux()
	srv.Register(mux)
	web.New(srv, false).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	// A machine whose required deployment already ran, and one agent boot.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.UpsertImage(ctx, model.Image{ID: "PB100001", Arch: model.ArchX64, Files: []model.ImageFile{{Name: "boot.wim", Size: 3, SHA256: strings.Repeat("ab", 32)}}}))
	must(st.UpsertMachines(ctx, []model.Machine{{ID: "pc1", Name: "Lab PC", MAC: "02:00:00:00:00:01"}, {ID: "pc2", MAC: "02:00:00:00:00:02"}}))
	must(st.UpsertDeployment(ctx, model.Deployment{ID: "win11", MachineID: "pc1", ImageID: "PB100001", Required: true, CreatedAt: time.Now()}))
	must(st.RecordConsumption(ctx, model.Consumption{DeploymentID: "win11", ClientKey: "m:pc1", At: time.Now()}))
	must(st.CreateAgent(ctx, model.Agent{ID: "a-1", Host: "agent-host-1", Subnets: []string{"198.18.1.0/24"}, Weight: 50, Images: []string{"PB100001"}, LastSeen: time.Now()}, "h"))
	_, err = st.AddEvents(ctx, []model.Event{{ID: "e1", AgentID: "a-1", Time: time.Now(), Type: model.EventPXEBoot, MAC: "02:00:00:00:00:01", Subnet: "198.18.1.0/24", ImageID: "PB100001", DeploymentID: "win11", Required: true, ReceivedAt: time.Now()}})
	must(err)

	d := startChrome(t)
	d.call("POST", d.sess("/url"), map[string]string{"url": hs.URL + "/ui/"})
	// Not logged in: the login form.
	d.call("POST", d.sess("/element/"+d.find("#token")+"/value"), map[string]string{"text": token})
	d.call("POST", d.sess("/element/"+d.find("#login")+"/click"), map[string]any{})
	if got := d.text("#machine-pc1 .consumed"); !strings.Contains(got, "win11") {
		t.Fatalf("before clear, pc1's consumed cell = %q", got)
	}
	page := d.source()
	for _, want := range []string{"agent-host-1", "198.18.1.0/24", "PB100001", "Recent boots", "02:00:00:00:00:01"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	d.call("POST", d.sess("/element/"+d.find("#clear-pc1")+"/click"), map[string]any{})
	if got := d.text("#flash"); got != "cleared m:pc1" {
		t.Fatalf("flash after clear = %q", got)
	}
	if got := d.text("#machine-pc1 .consumed"); got != "none" {
		t.Fatalf("after clear, pc1's consumed cell = %q", got)
	}
	cons, err := st.ListConsumptions(ctx)
	must(err)
	if len(cons) != 0 {
		t.Fatalf("store still has consumptions %+v", cons)
	}

	var shot string
	json.Unmarshal(d.call("GET", d.sess("/screenshot"), nil), &shot)
	png, err := base64.StdEncoding.DecodeString(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%v)", err)
	}
	dir := os.Getenv("PEERBOOT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	must(os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "central-web-after-clear.png")
	must(os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// Without the admin cookie the page redirects to the login form and the
// clear action is refused; a cross-site POST is refused even with it.
func TestPageNeedsLoginAndSameOrigin(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, _ := api.NewBlobs(t.TempDir())
	srv := api.New(api.Options{Store: st, Blobs: blobs, AdminTokenHash: api.HashSecret("tok")})
	mux := http.NewServeMux()
	web.New(srv, false).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(hs.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("anonymous /ui/: %s -> %s", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = noRedirect.Post(hs.URL+"/ui/machines/pc1/clear", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous clear: %s", resp.Status)
	}
	req, _ := http.NewRequest("POST", hs.URL+"/ui/machines/pc1/clear", nil)
	req.AddCookie(&http.Cookie{Name: "peerboot_admin", Value: "tok"})
	req.Header.Set("Origin", "http://evil.example")
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site clear: %s", resp.Status)
	}
}
