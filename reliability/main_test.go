package reliability

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// build is the peerboot binary under test, built on first use (fuzz
// workers never need it) and removed when the tests end.
var build struct {
	once      sync.Once
	dir, path string
	err       error
}

// peerboot returns the path of the peerboot binary, building it once
// (PEERBOOT_EXE names a prebuilt one instead).
func peerboot(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PEERBOOT_EXE"); p != "" {
		return p
	}
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "peerboot-reliability-"); build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "peerboot")
		out, err := exec.Command("go", "build", "-o", build.path, "github.com/peerboot/peerboot/cmd/peerboot").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// durationSetting reads a duration from the environment (e.g.
// PEERBOOT_HOSTILE_DURATION=60s), else def.
func durationSetting(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration", name, v)
	}
	return d
}

// proc is a peerboot process started by a test; it is killed by PID at
// cleanup.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startProc runs cmd with its stderr in a log file under dir and, when
// ready is not empty, waits for a stdout line starting with ready and
// returns that line.
func startProc(t *testing.T, cmd *exec.Cmd, dir, name, ready string) (*proc, string) {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{}), log: filepath.Join(dir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	var stdout io.ReadCloser
	if ready != "" {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lines := make(chan string, 1)
	if stdout != nil {
		go func() {
			sc := bufio.NewScanner(stdout)
			sent := false
			for sc.Scan() {
				if !sent && strings.HasPrefix(sc.Text(), ready) {
					lines <- sc.Text()
					sent = true
				}
			}
			close(lines)
		}()
	}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s log tail:\n%s", name, tailFile(p.log, 20))
		}
	})
	if stdout == nil {
		return p, ""
	}
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("%s exited before %q: %s", name, ready, tailFile(p.log, 10))
		}
		return p, line
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not print %q in 30s: %s", name, ready, tailFile(p.log, 10))
	}
	return p, ""
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process (by PID) and waits for it.
func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits up to limit for the exit; it returns the
// exit code.
func (p *proc) stop(limit time.Duration) (int, error) {
	if !p.running() {
		return p.cmd.ProcessState.ExitCode(), nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(limit):
		p.kill()
		return -1, fmt.Errorf("did not exit %v after SIGTERM", limit)
	}
}

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// fdCount counts the open file descriptors of a process.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startTFTP runs `peerboot tftp serve` on a loopback port and returns the
// process and its address.
func startTFTP(t *testing.T, root string, args ...string) (*proc, string) {
	t.Helper()
	cmd := exec.Command(peerboot(t), append([]string{"tftp", "serve", "--root", root, "--listen", "127.0.0.1:0"}, args...)...)
	p, line := startProc(t, cmd, t.TempDir(), "tftp", "serving ")
	i := strings.LastIndex(line, " on ")
	if i < 0 {
		t.Fatalf("unexpected banner %q", line)
	}
	return p, line[i+4:]
}

func createLog(path string) (*os.File, error) { return os.Create(path) }

// newLineReader returns a function yielding the lines of r.
func newLineReader(r io.Reader) func() (string, bool) {
	sc := bufio.NewScanner(r)
	return func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
}

// memLine summarises a process's memory from /proc (RSS and its parts).
func memLine(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "RssShmem:"} {
			if strings.HasPrefix(line, k) {
				parts = append(parts, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	return strings.Join(parts, ", ")
}
