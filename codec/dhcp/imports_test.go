package dhcp_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoIOImports keeps the codec pure: its non-test files import only
// packages from an allow list (no net, os, syscall or project I/O packages).
func TestNoIOImports(t *testing.T) {
	allowed := map[string]bool{"encoding/binary": true, "errors": true, "strconv": true, "bytes": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %q, which a pure codec must not", name, path)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d source files checked", checked)
	}
}
