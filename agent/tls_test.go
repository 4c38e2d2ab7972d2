package agent

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCentralHTTPClientTrustsTheGivenCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "central.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	hc, err := CentralHTTPClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	resp.Body.Close()
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("the system roots trusted a self-signed test certificate")
	}
	if hc, err := CentralHTTPClient(""); hc != nil || err != nil {
		t.Errorf("no CA file: %v, %v; want the default client", hc, err)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	if _, err := CentralHTTPClient(bad); err == nil || !strings.Contains(err.Error(), "setting central-ca") {
		t.Errorf("bad PEM: %v", err)
	}
	if _, err := CentralHTTPClient(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "setting central-ca") {
		t.Errorf("missing file: %v", err)
	}
}
