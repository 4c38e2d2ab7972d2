package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// centralProc is a real `peerboot central` process on loopback.
type centralProc struct {
	p            *proc
	url          string
	admin, enrol string
	hc           *http.Client
}

// startCentral runs Central on a loopback port with the data directory dir
// (SQLite unless args name --db) and reads its secrets from stdout (they
// are printed on the first start only; pass the old ones on a restart).
func startCentral(t *testing.T, dir string, old *centralProc, args ...string) *centralProc {
	t.Helper()
	cmd := exec.Command(peerboot(t), append([]string{"central", "--listen", "127.0.0.1:0", "--data-dir", dir}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &centralProc{hc: &http.Client{Timeout: 60 * time.Second}}
	if old != nil {
		c.admin, c.enrol = old.admin, old.enrol
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: dir + "/central.stderr"}
	c.p = p
	logf, err := createLog(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		buf := new(bytes.Buffer)
		tee := io.TeeReader(stdout, buf)
		lines := newLineReader(tee)
		sent := false
		for {
			line, ok := lines()
			if !ok {
				break
			}
			switch {
			case strings.HasPrefix(line, "admin token: "):
				c.admin = strings.Fields(strings.TrimPrefix(line, "admin token: "))[0]
			case strings.HasPrefix(line, "enrollment key: "):
				c.enrol = strings.Fields(strings.TrimPrefix(line, "enrollment key: "))[0]
			case strings.Contains(line, "listening on "):
				if !sent {
					ready <- line[strings.Index(line, "listening on ")+len("listening on "):]
					sent = true
				}
			}
		}
		if !sent {
			close(ready)
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- central log tail:\n%s", tailFile(p.log, 20))
		}
	})
	select {
	case u, ok := <-ready:
		if !ok {
			t.Fatalf("central exited before listening: %s", tailFile(p.log, 10))
		}
		c.url = strings.TrimSpace(u)
	case <-time.After(30 * time.Second):
		t.Fatalf("central did not listen in 30s: %s", tailFile(p.log, 10))
	}
	if c.admin == "" || c.enrol == "" {
		t.Fatal("central printed no admin token or enrollment key")
	}
	return c
}

// do sends one request and returns the status and body.
func (c *centralProc) do(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *centralProc) must(t *testing.T, method, path, token string, body any, out any) {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	code, resp := c.do(t, method, path, token, b)
	if code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, code, resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, resp)
		}
	}
}

// dump reads everything an administrator can read, to compare state.
func (c *centralProc) dump(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	for _, p := range []string{"/api/v1/machines", "/api/v1/deployments", "/api/v1/images", "/api/v1/ignored-macs",
		"/api/v1/agents", "/api/v1/events?limit=10000", "/api/v1/decision-set"} {
		code, b := c.do(t, "GET", p, c.admin, nil)
		if code != 200 {
			t.Fatalf("dump %s: %d %s", p, code, b)
		}
		fmt.Fprintf(&sb, "%s\n%s\n", p, b)
	}
	return sb.String()
}

// centralFixture gives Central one of everything: a blob, an image, a
// machine with a required deployment, an unknown-computers deployment, an
// ignored MAC, an enrolled agent and one event of it.
func centralFixture(t *testing.T, c *centralProc) (agentToken, blobSum string) {
	t.Helper()
	blob := []byte("reliability boot file\n")
	sum := sha256.Sum256(blob)
	blobSum = hex.EncodeToString(sum[:])
	if code, b := c.do(t, "PUT", "/api/v1/blobs/"+blobSum, c.admin, blob); code >= 300 {
		t.Fatalf("upload: %d %s", code, b)
	}
	c.must(t, "POST", "/api/v1/images", c.admin, map[string]any{"id": "IMG1", "arch": "x64",
		"files": []any{map[string]any{"name": "boot.efi", "sha256": blobSum, "size": len(blob)}}}, nil)
	c.must(t, "POST", "/api/v1/machines", c.admin, map[string]any{"id": "m1", "name": "first", "mac": "02:00:00:00:00:01"}, nil)
	c.must(t, "POST", "/api/v1/deployments", c.admin, map[string]any{"id": "d1", "machine_id": "m1", "image_id": "IMG1", "required": true}, nil)
	c.must(t, "POST", "/api/v1/deployments", c.admin, map[string]any{"id": "d2", "unknown_computers": true, "image_id": "IMG1"}, nil)
	c.must(t, "PUT", "/api/v1/ignored-macs/02:00:00:00:00:99", c.admin, nil, nil)
	// m1 boots its required deployment once: a consumption that an
	// unauthorised "clear required" would remove.
	var dec struct {
		Boot         bool   `json:"boot"`
		DeploymentID string `json:"deployment_id"`
	}
	c.must(t, "POST", "/api/v1/decide", c.admin, map[string]any{"mac": "02:00:00:00:00:01", "arch": "uefi-x64"}, &dec)
	if !dec.Boot || dec.DeploymentID != "d1" {
		t.Fatalf("fixture: m1 was not handed its required deployment: %+v", dec)
	}
	var enr struct {
		AgentID string `json:"agent_id"`
		Token   string `json:"token"`
	}
	c.must(t, "POST", "/api/v1/agents/enroll", "", map[string]any{"enrollment_key": c.enrol, "host": "agent-a",
		"subnets": []string{"198.18.0.0/24"}, "addresses": []string{"198.18.0.11"}, "version": "test", "weight": 50}, &enr)
	c.must(t, "POST", "/api/v1/events", enr.Token, map[string]any{"events": []any{map[string]any{
		"id": "ev-1", "type": "transfer", "mac": "02:00:00:00:00:05", "time": time.Now().UTC().Format(time.RFC3339Nano)}}}, nil)
	return enr.Token, blobSum
}

// sqlInjections are strings that break a query built by pasting text.
var sqlInjections = []string{
	`' OR '1'='1`,
	`'; DROP TABLE machines; --`,
	`"; DROP TABLE events; --`,
	`x'); DELETE FROM deployments; --`,
	`1 OR 1=1`,
	`' UNION SELECT token_hash, token_hash, token_hash, token_hash FROM agents --`,
	`$$; DROP TABLE images; $$`,
	`\'; UPDATE secrets SET value='x'; --`,
	"'\x00--",
	`%27%20OR%201%3D1`,
}

type hostileRequest struct {
	method, path, token string
	body                []byte
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCentralRefusesHostileInput sends unauthenticated writes, malformed
// JSON, oversized bodies and SQL-injection strings in every field to a
// real Central (SQLite): each gets a 4xx, and everything an administrator
// can read is byte for byte what it was before. Free-text fields then
// take the same strings, store them verbatim, and nothing else changes.
func TestCentralRefusesHostileInput(t *testing.T) {
	dir := t.TempDir()
	c := startCentral(t, dir, nil)
	agentTok, blobSum := centralFixture(t, c)
	before := c.dump(t)

	var reqs []hostileRequest
	add := func(method, path, token string, body []byte) {
		reqs = append(reqs, hostileRequest{method, path, token, body})
	}
	// Every write, valid in shape, without a token, with a wrong one, and
	// (for the administrator's writes) with the agent's.
	writes := []hostileRequest{
		{"POST", "/api/v1/agents/heartbeat", "", jsonBody(map[string]any{"subnets": []string{"198.18.0.0/24"}, "weight": 99})},
		{"POST", "/api/v1/events", "", jsonBody(map[string]any{"events": []any{map[string]any{"id": "forged", "type": "pxe.boot", "mac": "02:00:00:00:00:01", "required": true}}})},
		{"POST", "/api/v1/machines", "", jsonBody(map[string]any{"id": "evil", "mac": "02:00:00:00:00:66"})},
		{"POST", "/api/v1/machines/import", "", []byte("id,name,mac\nevil,evil,02:00:00:00:00:66\n")},
		{"PUT", "/api/v1/machines/m1", "", jsonBody(map[string]any{"id": "m1", "name": "owned", "mac": "02:00:00:00:00:01"})},
		{"DELETE", "/api/v1/machines/m1", "", nil},
		{"POST", "/api/v1/machines/m1/clear-required", "", nil},
		{"POST", "/api/v1/clear-required", "", jsonBody(map[string]any{"mac": "02:00:00:00:00:01"})},
		{"POST", "/api/v1/deployments", "", jsonBody(map[string]any{"id": "evil", "unknown_computers": true, "image_id": "IMG1", "required": true, "priority": 1000})},
		{"PUT", "/api/v1/deployments/d2", "", jsonBody(map[string]any{"id": "d2", "unknown_computers": true, "image_id": "IMG1", "priority": 1000})},
		{"DELETE", "/api/v1/deployments/d1", "", nil},
		{"POST", "/api/v1/images", "", jsonBody(map[string]any{"id": "EVIL", "arch": "x64", "files": []any{map[string]any{"name": "boot.efi", "sha256": blobSum, "size": 22}}})},
		{"POST", "/api/v1/images/register", "", jsonBody(map[string]any{"id": "EVIL", "arch": "x64", "dir": "/etc"})},
		{"DELETE", "/api/v1/images/IMG1", "", nil},
		{"PUT", "/api/v1/blobs/" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("evil")); return s[:] }()), "", []byte("evil")},
		{"PUT", "/api/v1/ignored-macs/02:00:00:00:00:01", "", nil},
		{"DELETE", "/api/v1/ignored-macs/02:00:00:00:00:99", "", nil},
	}
	adminOnly := func(path string) bool {
		return !strings.HasPrefix(path, "/api/v1/agents/") && !strings.HasPrefix(path, "/api/v1/events")
	}
	for _, w := range writes {
		add(w.method, w.path, "", w.body)
		add(w.method, w.path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", w.body)
		add(w.method, w.path, sqlInjections[0], w.body)
		add(w.method, w.path, c.enrol, w.body) // the enrollment key is not a token
		if adminOnly(w.path) {
			add(w.method, w.path, agentTok, w.body)
		}
	}
	// Enrollment with a wrong key creates no agent.
	for _, k := range append([]string{"", "wrong"}, sqlInjections...) {
		add("POST", "/api/v1/agents/enroll", "", jsonBody(map[string]any{"enrollment_key": k, "host": "evil", "subnets": []string{"198.18.0.0/24"}, "weight": 99}))
	}
	// Malformed JSON on every JSON write, with the administrator's token.
	malformed := [][]byte{
		[]byte(`{`), []byte(`{"id":`), []byte(`[]`), []byte(`"text"`), []byte(`12`), []byte(`{"id":"x"} {"id":"y"}`),
		[]byte(`{"id":"x","mac":1e999}`), []byte("{\"id\":\"x\xff\xfe\"}"), []byte(strings.Repeat("[", 100000)),
		[]byte(`{"id":"x","id":{"$ne":null}}`), []byte(`{"unknown_field":true}`), []byte{0, 0, 0, 0},
	}
	jsonWrites := []struct{ method, path, token string }{
		{"POST", "/api/v1/machines", c.admin}, {"PUT", "/api/v1/machines/m1", c.admin},
		{"POST", "/api/v1/deployments", c.admin}, {"PUT", "/api/v1/deployments/d1", c.admin},
		{"POST", "/api/v1/images", c.admin}, {"POST", "/api/v1/images/register", c.admin},
		{"POST", "/api/v1/clear-required", c.admin}, {"POST", "/api/v1/decide", c.admin},
		{"POST", "/api/v1/agents/enroll", ""}, {"POST", "/api/v1/agents/heartbeat", agentTok},
		{"POST", "/api/v1/events", agentTok},
	}
	for _, w := range jsonWrites {
		for _, m := range malformed {
			add(w.method, w.path, w.token, m)
		}
		// Oversized: a valid object padded past the 1 MiB limit (4 MiB
		// for events).
		limit := 1 << 20
		if w.path == "/api/v1/events" {
			limit = 4 << 20
		}
		add(w.method, w.path, w.token, append([]byte(`{"id":"big"`+strings.Repeat(" ", limit)), '}'))
	}
	// A CSV import past 64 MiB, of valid rows: nothing of it is stored.
	var csv bytes.Buffer
	csv.WriteString("id,name,mac\n")
	for i := 0; csv.Len() <= 64<<20; i++ {
		fmt.Fprintf(&csv, "big%d,%s,02:01:%02x:%02x:%02x:%02x\n", i, strings.Repeat("n", 200), byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
	}
	add("POST", "/api/v1/machines/import", c.admin, csv.Bytes())
	// A blob whose body does not hash to its name, and names that are not
	// digests.
	add("PUT", "/api/v1/blobs/"+strings.Repeat("ab", 32), c.admin, []byte("not matching"))
	add("PUT", "/api/v1/blobs/..%2F..%2Fcentral.db", c.admin, []byte("x"))
	add("PUT", "/api/v1/blobs/"+url.PathEscape(sqlInjections[1]), c.admin, []byte("x"))
	// SQL injection in every validated field, and in ids in paths and
	// query strings.
	for _, s := range sqlInjections {
		esc := url.PathEscape(s)
		add("POST", "/api/v1/machines", c.admin, jsonBody(map[string]any{"id": s, "mac": "02:00:00:00:00:77"}))
		add("POST", "/api/v1/machines", c.admin, jsonBody(map[string]any{"id": "sqlm", "mac": s}))
		add("POST", "/api/v1/machines", c.admin, jsonBody(map[string]any{"id": "sqlm", "guid": s}))
		add("PUT", "/api/v1/machines/"+esc, c.admin, jsonBody(map[string]any{"id": s, "mac": "02:00:00:00:00:01"}))
		add("DELETE", "/api/v1/machines/"+esc, c.admin, nil)
		add("POST", "/api/v1/machines/"+esc+"/clear-required", c.admin, nil)
		add("GET", "/api/v1/machines/"+esc, c.admin, nil)
		add("POST", "/api/v1/deployments", c.admin, jsonBody(map[string]any{"id": s, "unknown_computers": true, "image_id": "IMG1"}))
		add("POST", "/api/v1/deployments", c.admin, jsonBody(map[string]any{"id": "sqld", "machine_id": s, "image_id": "IMG1"}))
		add("POST", "/api/v1/deployments", c.admin, jsonBody(map[string]any{"id": "sqld", "unknown_computers": true, "image_id": s}))
		add("POST", "/api/v1/deployments", c.admin, jsonBody(map[string]any{"id": "sqld", "unknown_computers": true, "image_id": "IMG1", "subnets": []string{s}}))
		add("DELETE", "/api/v1/deployments/"+esc, c.admin, nil)
		add("POST", "/api/v1/images", c.admin, jsonBody(map[string]any{"id": s, "arch": "x64", "files": []any{map[string]any{"name": "boot.efi", "sha256": blobSum, "size": 22}}}))
		add("POST", "/api/v1/images", c.admin, jsonBody(map[string]any{"id": "SQLI", "arch": s, "files": []any{}}))
		add("POST", "/api/v1/images", c.admin, jsonBody(map[string]any{"id": "SQLI", "arch": "x64", "files": []any{map[string]any{"name": "boot.efi", "sha256": s, "size": 22}}}))
		add("POST", "/api/v1/images", c.admin, jsonBody(map[string]any{"id": "SQLI", "arch": "x64", "files": []any{map[string]any{"name": s, "sha256": strings.Repeat("cd", 32), "size": 22}}}))
		add("POST", "/api/v1/images/register", c.admin, jsonBody(map[string]any{"id": "SQLI", "arch": "x64", "dir": s}))
		add("DELETE", "/api/v1/images/"+esc, c.admin, nil)
		add("GET", "/api/v1/images/IMG1/files/"+esc, c.admin, nil)
		add("PUT", "/api/v1/ignored-macs/"+esc, c.admin, nil)
		add("DELETE", "/api/v1/ignored-macs/"+esc, c.admin, nil)
		add("POST", "/api/v1/clear-required", c.admin, jsonBody(map[string]any{"mac": s}))
		add("POST", "/api/v1/clear-required", c.admin, jsonBody(map[string]any{"guid": s}))
		add("POST", "/api/v1/decide", agentTok, jsonBody(map[string]any{"mac": s, "arch": "uefi-x64"}))
		add("POST", "/api/v1/decide", agentTok, jsonBody(map[string]any{"mac": "02:00:00:00:00:01", "guid": s, "arch": "uefi-x64"}))
		add("POST", "/api/v1/decide", agentTok, jsonBody(map[string]any{"mac": "02:00:00:00:00:01", "arch": s}))
		add("POST", "/api/v1/decide", agentTok, jsonBody(map[string]any{"mac": "02:00:00:00:00:01", "arch": "uefi-x64", "subnet": s}))
		add("POST", "/api/v1/agents/heartbeat", agentTok, jsonBody(map[string]any{"subnets": []string{s}, "weight": 50}))
		add("POST", "/api/v1/agents/heartbeat", agentTok, jsonBody(map[string]any{"subnets": []string{"198.18.0.0/24"}, "addresses": []string{s}, "weight": 50}))
		add("POST", "/api/v1/events", agentTok, jsonBody(map[string]any{"events": []any{map[string]any{"id": "sqle", "type": "transfer", "mac": s}}}))
		add("POST", "/api/v1/events", agentTok, jsonBody(map[string]any{"events": []any{map[string]any{"id": "sqle", "type": "transfer", "guid": s}}}))
		add("GET", "/api/v1/events?limit="+url.QueryEscape(s), c.admin, nil)
		add("GET", "/api/v1/decision-set?wait="+url.QueryEscape(s), c.admin, nil)
	}
	// The web page's form posts: no cookie, a wrong cookie, and the right
	// cookie from another site (CSRF).
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, wc := range []struct{ cookie, origin string }{{"", ""}, {"wrong", ""}, {sqlInjections[0], ""}, {c.admin, "http://evil.example"}} {
		for _, path := range []string{"/ui/machines/m1/clear", "/ui/machines/" + url.PathEscape(sqlInjections[1]) + "/clear"} {
			req, _ := http.NewRequest("POST", c.url+path, strings.NewReader(""))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if wc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "peerboot_admin", Value: wc.cookie})
			}
			if wc.origin != "" {
				req.Header.Set("Origin", wc.origin)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("web POST %s (cookie %q, origin %q): %d, want a 4xx", path, firstN(wc.cookie, 12), wc.origin, resp.StatusCode)
			}
		}
	}
	for _, r := range reqs {
		code, body := c.do(t, r.method, r.path, r.token, r.body)
		if code < 400 || code >= 500 {
			t.Errorf("%s %s (token %q, body %q): %d %s, want a 4xx", r.method, r.path, firstN(r.token, 12), firstN(string(r.body), 80), code, firstN(string(body), 200))
		}
	}
	if after := c.dump(t); after != before {
		t.Fatalf("state changed under refused requests:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The control: the same "clear required" by the administrator does
	// change what the dump shows, so the comparison above can see it.
	c.must(t, "POST", "/api/v1/machines/m1/clear-required", c.admin, nil, nil)
	if cleared := c.dump(t); section(cleared, "/api/v1/decision-set") == section(before, "/api/v1/decision-set") {
		t.Fatal("an authorised clear-required left the decision set as it was: the dump does not show consumptions")
	}
	c.must(t, "POST", "/api/v1/decide", c.admin, map[string]any{"mac": "02:00:00:00:00:01", "arch": "uefi-x64"}, nil)
	before = c.dump(t)
	// Read-only queries with injection strings leave everything as is and
	// find nothing.
	for _, s := range sqlInjections {
		for _, p := range []string{"/api/v1/events?type=", "/api/v1/agents?subnet="} {
			code, body := c.do(t, "GET", p+url.QueryEscape(s), c.admin, nil)
			if code == 200 && strings.TrimSpace(string(body)) != "[]" {
				t.Errorf("GET %s%q found %s", p, s, firstN(string(body), 200))
			} else if code != 200 && (code < 400 || code >= 500) {
				t.Errorf("GET %s%q: %d", p, s, code)
			}
		}
	}
	t.Logf("%d hostile requests refused with a 4xx; state unchanged", len(reqs))

	// Free text takes the strings verbatim and nothing else changes.
	for i, s := range sqlInjections {
		id := fmt.Sprintf("free%d", i)
		c.must(t, "POST", "/api/v1/machines", c.admin, map[string]any{"id": id, "name": s, "mac": fmt.Sprintf("02:00:00:00:01:%02x", i)}, nil)
		var m struct{ Name string }
		c.must(t, "GET", "/api/v1/machines/"+id, c.admin, nil, &m)
		if m.Name != s {
			t.Errorf("machine name %q stored as %q", s, m.Name)
		}
		c.must(t, "DELETE", "/api/v1/machines/"+id, c.admin, nil, nil)
		c.must(t, "POST", "/api/v1/events", agentTok, map[string]any{"events": []any{map[string]any{
			"id": s, "type": firstN(s, 64), "subnet": s, "image_id": s, "deployment_id": s, "detail": map[string]string{"text": s}}}}, nil)
	}
	var evs []struct {
		ID, Type, Subnet string
		ImageID          string `json:"image_id"`
		DeploymentID     string `json:"deployment_id"`
	}
	c.must(t, "GET", "/api/v1/events?limit=10000", c.admin, nil, &evs)
	got := map[string]bool{}
	for _, e := range evs {
		if firstN(e.ID, 64) == e.Type && e.ID == e.Subnet && e.ID == e.ImageID && e.ID == e.DeploymentID {
			got[e.ID] = true
		}
	}
	for _, s := range sqlInjections {
		if !got[s] {
			t.Errorf("event with id/type/subnet/image/deployment %q not stored verbatim", s)
		}
	}
	after := c.dump(t)
	for _, p := range []string{"/api/v1/machines", "/api/v1/deployments", "/api/v1/images", "/api/v1/ignored-macs", "/api/v1/agents", "/api/v1/decision-set"} {
		if withoutVersion(t, section(before, p)) != withoutVersion(t, section(after, p)) {
			t.Errorf("%s changed after free-text writes elsewhere:\n%s\n%s", p, section(before, p), section(after, p))
		}
	}
}

// section cuts one endpoint's body out of a dump.
func section(dump, path string) string {
	i := strings.Index(dump, path+"\n")
	if i < 0 {
		return ""
	}
	rest := dump[i+len(path)+1:]
	if j := strings.Index(rest, "\n/api/v1/"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// withoutVersion drops the version counters of a decision set (writes
// elsewhere move them) and leaves any other body as it is.
func withoutVersion(t *testing.T, body string) string {
	t.Helper()
	if !strings.HasPrefix(body, `{"version"`) {
		return body
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "version")
	b, _ := json.Marshal(m)
	return string(b)
}
