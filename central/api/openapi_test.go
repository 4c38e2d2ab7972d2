package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/peerboot/peerboot/central/api"
)

// Every route the server registers is documented in the OpenAPI document,
// and the document names no route that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	e := newEnv(t)
	routes := map[string]bool{}
	for _, r := range e.srv.Routes() {
		key := strings.ToLower(r[0]) + " " + r[1]
		routes[key] = true
		if _, ok := doc.Paths[r[1]][strings.ToLower(r[0])]; !ok {
			t.Errorf("route %s %s is not in openapi.json", r[0], r[1])
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !routes[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which the server does not serve", method, path)
			}
		}
	}
	resp, err := http.Get(e.url + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("served openapi: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
}
