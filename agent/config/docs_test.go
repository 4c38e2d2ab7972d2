package config

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestReferenceListsEverySetting keeps docs/AGENT.md in step with the code.
func TestReferenceListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/AGENT.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var c Config
	for _, st := range NewSet(&c, "agent", io.Discard).Settings() {
		def := st[2]
		if def == "" {
			def = "(none)"
		}
		row := "| `" + st[0] + "` | `--" + st[0] + "` | `" + st[1] + "` | `" + def + "` |"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/AGENT.md has no row starting %q", row)
		}
	}
}
