package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// centralRun starts `peerboot central` in-process and returns its base URL,
// everything it printed before listening, and a stop function.
func centralRun(t *testing.T, dataDir string) (url, printed string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runCentral(ctx, []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir}, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var lines []string
	re := regexp.MustCompile(`listening on (http://\S+)`)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("central did not start; printed %q (%v)", lines, <-done)
	}
	go io.Copy(io.Discard, pr)
	return url, strings.Join(lines, "\n"), func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("central after cancel: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("central did not shut down")
		}
	}
}

func TestCentralFirstStartPrintsSecretsAndPersists(t *testing.T) {
	dir := t.TempDir()
	url, printed, stop := centralRun(t, dir)
	tok := regexp.MustCompile(`admin token: ([0-9a-f]{64})`).FindStringSubmatch(printed)
	key := regexp.MustCompile(`enrollment key: ([0-9a-f]{64})`).FindStringSubmatch(printed)
	if tok == nil || key == nil {
		t.Fatalf("first start did not print the admin token and enrollment key:\n%s", printed)
	}
	post := func(url, tok, body string) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(url+"/api/v1/machines", tok[1], `{"id":"pc1","mac":"02:00:00:00:00:01"}`); c != 201 {
		t.Fatalf("create machine with the printed token: %d", c)
	}
	if c := post(url+"/api/v1/machines", "", `{"id":"pc2","mac":"02:00:00:00:00:02"}`); c != 401 {
		t.Fatalf("write without a token: %d, want 401", c)
	}
	if c := post(url+"/api/v1/agents/enroll", "", `{"enrollment_key":"`+key[1]+`","host":"h"}`); c != 201 {
		t.Fatalf("enroll with the printed key: %d", c)
	}
	stop()

	// Second start: nothing printed, same token, data kept.
	url, printed, stop = centralRun(t, dir)
	defer stop()
	if strings.Contains(printed, "admin token") {
		t.Fatalf("second start printed secrets again:\n%s", printed)
	}
	req, _ := http.NewRequest("GET", url+"/api/v1/machines/pc1", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["mac"] != "02:00:00:00:00:01" {
		t.Fatalf("after restart: %s %v", resp.Status, m)
	}
}

func TestCentralNeedsDataDir(t *testing.T) {
	if code := run([]string{"central", "--listen", "127.0.0.1:0"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit %d without --data-dir, want 2", code)
	}
}
