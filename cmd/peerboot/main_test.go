package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUnknownCommandIsOneClearLine(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"frobnicate"}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr %q does not name the unknown command", errb.String())
	}
}

func TestUnknownFlagIsUsageError(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version", "--bogus"}, &out, &errb); code != 2 {
		t.Fatalf("exit code %d, want 2; stderr %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "bogus") {
		t.Fatalf("stderr %q does not name the flag", errb.String())
	}
}

func TestVersionPrintsVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "peerboot dev") {
		t.Fatalf("stdout %q", out.String())
	}
}
