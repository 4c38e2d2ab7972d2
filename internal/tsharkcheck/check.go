package tsharkcheck

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Expert severities as tshark prints the _ws.expert.severity field.
const (
	severityWarning = 0x00600000
	severityError   = 0x00800000
)

// Options says how tshark should dissect a capture.
type Options struct {
	// DHCPPorts are extra UDP ports to dissect as DHCP/BOOTP (67 and 68
	// are always DHCP), e.g. 4011 for PXE boot-server requests.
	DHCPPorts []uint16
	// TFTPPorts are extra UDP ports to dissect as TFTP (69 always is).
	TFTPPorts []uint16
	// VerifyChecksums makes tshark verify IPv4 header and UDP checksums,
	// so a wrong checksum is reported as an expert error.
	VerifyChecksums bool
	// Tshark is the program to run; empty means "tshark" from PATH.
	Tshark string
}

// Problem is one frame that tshark found malformed or flagged with an
// expert note of severity warning or above.
type Problem struct {
	Frame     int    // 1-based frame number in the capture
	Malformed bool   // a dissector hit the end of the data or an inconsistency
	Severity  string // "error" or "warning" (highest expert note); "" if none
	Protocol  string // protocol column
	Info      string // info column
	Messages  string // expert messages, ";" separated
}

// String renders the problem as one line for test logs.
func (p Problem) String() string {
	kind := p.Severity
	if p.Malformed {
		kind = "malformed"
	}
	return fmt.Sprintf("frame %d %s: %s | %s | %s", p.Frame, kind, p.Protocol, p.Info, p.Messages)
}

// Result counts what tshark saw in a capture.
type Result struct {
	Frames    int // frames in the capture
	Malformed int // frames with a malformed-packet exception
	Errors    int // frames (not malformed) with an expert error
	Warnings  int // frames with at most an expert warning
	// Protocols counts, per protocol name in frame.protocols (e.g. "eth",
	// "vlan", "ip", "udp", "dhcp", "tftp"), how many frames contain it.
	Protocols map[string]int
	Problems  []Problem
}

// Clean reports whether no frame was malformed or carried an expert note
// of severity warning or above.
func (r Result) Clean() bool { return r.Malformed == 0 && r.Errors == 0 && r.Warnings == 0 }

// String summarises the result, listing every problem frame.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d frames, %d malformed, %d errors, %d warnings", r.Frames, r.Malformed, r.Errors, r.Warnings)
	for _, p := range r.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Check dissects the capture at pcapPath with tshark and classifies every
// frame. An error means tshark could not be run or could not read the
// capture; problems inside the capture are reported in the Result.
func Check(ctx context.Context, pcapPath string, opts Options) (Result, error) {
	prog := opts.Tshark
	if prog == "" {
		prog = "tshark"
	}
	args := []string{"-n", "-r", pcapPath}
	for _, p := range opts.DHCPPorts {
		args = append(args, "-d", fmt.Sprintf("udp.port==%d,dhcp", p))
	}
	for _, p := range opts.TFTPPorts {
		args = append(args, "-d", fmt.Sprintf("udp.port==%d,tftp", p))
	}
	if opts.VerifyChecksums {
		args = append(args, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE")
	}
	args = append(args, "-T", "fields", "-E", "separator=/t", "-E", "aggregator=;", "-E", "occurrence=a",
		"-e", "frame.number", "-e", "frame.protocols", "-e", "_ws.malformed",
		"-e", "_ws.expert.severity", "-e", "_ws.expert.message",
		"-e", "_ws.col.Protocol", "-e", "_ws.col.Info")
	cmd := exec.CommandContext(ctx, prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("tshark %s: %w: %s", pcapPath, err, strings.TrimSpace(stderr.String()))
	}
	return parseFields(stdout.String())
}

// parseFields classifies tshark's tab-separated field output, one line per
// frame, in the column order Check asks for.
func parseFields(out string) (Result, error) {
	res := Result{Protocols: map[string]int{}}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		col := strings.SplitN(line, "\t", 7)
		if len(col) != 7 {
			return res, fmt.Errorf("tshark output line %q: %d columns, want 7", line, len(col))
		}
		n, err := strconv.Atoi(col[0])
		if err != nil {
			return res, fmt.Errorf("tshark output line %q: frame number: %w", line, err)
		}
		res.Frames++
		seen := map[string]bool{}
		for _, proto := range strings.Split(col[1], ":") {
			if proto != "" && !seen[proto] {
				seen[proto] = true
				res.Protocols[proto]++
			}
		}
		p := Problem{Frame: n, Malformed: col[2] != "", Messages: col[4], Protocol: col[5], Info: col[6]}
		worst := 0
		for _, s := range strings.FieldsFunc(col[3], func(r rune) bool { return r == ';' || r == ' ' }) {
			v, err := strconv.Atoi(s)
			if err != nil {
				return res, fmt.Errorf("tshark output line %q: expert severity %q: %w", line, s, err)
			}
			worst = max(worst, v)
		}
		switch {
		case worst >= severityError:
			p.Severity = "error"
		case worst >= severityWarning:
			p.Severity = "warning"
		}
		switch {
		case p.Malformed:
			res.Malformed++
		case p.Severity == "error":
			res.Errors++
		case p.Severity == "warning":
			res.Warnings++
		default:
			continue
		}
		res.Problems = append(res.Problems, p)
	}
	return res, nil
}

// CheckFrames writes frames to a pcap in the test's temporary directory,
// dissects it with tshark and returns the result. It fails the test at
// once if the capture cannot be written or tshark cannot be run, and
// always checks that tshark saw exactly len(frames) frames. The caller
// asserts on the result (typically Clean, and Protocols).
func CheckFrames(tb testing.TB, frames [][]byte, opts Options) Result {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "frames.pcap")
	if err := WritePCAP(path, frames); err != nil {
		tb.Fatalf("tsharkcheck: %v", err)
	}
	res, err := Check(tb.Context(), path, opts)
	if err != nil {
		tb.Fatalf("tsharkcheck: %v", err)
	}
	if res.Frames != len(frames) {
		tb.Fatalf("tsharkcheck: tshark read %d frames, wrote %d", res.Frames, len(frames))
	}
	return res
}
