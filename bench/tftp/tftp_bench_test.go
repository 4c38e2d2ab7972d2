package tftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"

	"github.com/peerboot/peerboot/internal/netlab"
	"github.com/peerboot/peerboot/tftp/client"
)

// Peer server binaries; override with environment variables. atftpd
// conflicts with tftpd-hpa as a Debian package, so scripts/setup.sh unpacks
// it (apt-get download + dpkg -x) under /opt/peerboot-peers/atftpd, where it
// is found without PEERBOOT_ATFTPD.
func peerBinary(b *testing.B, env, def string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := exec.LookPath(def)
	if err == nil {
		return p
	}
	// scripts/setup.sh unpacks peers that conflict with installed
	// packages (atftpd and tftpd-hpa) under /opt/peerboot-peers.
	unpacked := filepath.Join("/opt/peerboot-peers", def, "usr/sbin", def)
	if _, statErr := os.Stat(unpacked); statErr == nil {
		return unpacked
	}
	b.Fatalf("%s not found (set %s, or run scripts/setup.sh): %v", def, env, err)
	return ""
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	peerbootBin string
	fixtureErr  error
)

const (
	singleSize     = 100 << 20
	concurrentSize = 20 << 20
	concurrency    = 200
)

// fixture writes the test files and builds the peerboot binary once.
func fixture(b *testing.B) string {
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("/tmp", "peerboot-tftp-bench-")
		if fixtureErr != nil {
			return
		}
		os.Chmod(fixtureDir, 0o755)
		for name, size := range map[string]int64{"single.bin": singleSize, "conc.bin": concurrentSize} {
			f, err := os.Create(filepath.Join(fixtureDir, name))
			if err != nil {
				fixtureErr = err
				return
			}
			io.CopyN(f, rand.Reader, size)
			f.Close()
			os.Chmod(f.Name(), 0o644)
		}
		peerbootBin = filepath.Join(fixtureDir, "peerboot")
		out, err := exec.Command("go", "build", "-o", peerbootBin, "github.com/peerboot/peerboot/cmd/peerboot").CombinedOutput()
		if err != nil {
			fixtureErr = fmt.Errorf("build peerboot: %v: %s", err, out)
		}
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixtureDir
}

// TestMain removes the fixture (two test files and a peerboot binary,
// about 150 MiB) when the run ends.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// serverLog keeps a server's log lines; retransmits sums the
// "retransmits=N" fields of peerboot's per-transfer lines.
type serverLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *serverLog) retransmits() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum int64
	for _, f := range strings.Fields(l.buf.String()) {
		if v, ok := strings.CutPrefix(f, "retransmits="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			sum += n
		}
	}
	return sum
}

// peerbootLog receives the log of the peerboot server under benchmark.
var peerbootLog = &serverLog{}

// startProcess runs a server process and waits until its UDP port is bound.
func startProcess(b *testing.B, port int, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = io.Discard
	if name == peerbootBin {
		cmd.Stderr = peerbootLog
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitBound(b, port)
	return cmd
}

func waitBound(b *testing.B, port int) {
	for i := 0; i < 100; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			return // taken: the server is up
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("server did not bind port %d", port)
}

type server struct {
	name    string
	windows []int
	start   func(b *testing.B, root string, port int)
}

var servers = []server{
	{"peerboot", []int{1, 16, 64}, func(b *testing.B, root string, port int) {
		startProcess(b, port, peerbootBin, "tftp", "serve", "--root", root, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	}},
	{"atftpd", []int{1, 16, 64}, func(b *testing.B, root string, port int) {
		startProcess(b, port, peerBinary(b, "PEERBOOT_ATFTPD", "atftpd"), "--daemon", "--no-fork", "--port", strconv.Itoa(port),
			"--bind-address", "127.0.0.1", "--user", "nobody", "--group", "nogroup", "--logfile", "/dev/null", root)
	}},
	{"tftpd-hpa", []int{1}, func(b *testing.B, root string, port int) {
		startProcess(b, port, peerBinary(b, "PEERBOOT_TFTPD_HPA", "in.tftpd"), "-L", "-a", fmt.Sprintf("127.0.0.1:%d", port), "-s", "-u", "nobody", root)
	}},
	{"pin-tftp", []int{1}, func(b *testing.B, root string, port int) {
		s := pintftp.NewServer(func(name string, rf io.ReaderFrom) error {
			f, err := os.Open(filepath.Join(root, filepath.Base(name)))
			if err != nil {
				return err
			}
			defer f.Close()
			if st, err := f.Stat(); err == nil {
				rf.(pintftp.OutgoingTransfer).SetSize(st.Size())
			}
			_, err = rf.ReadFrom(f)
			return err
		}, nil)
		s.SetBlockSize(65464)
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			b.Fatal(err)
		}
		go s.Serve(conn)
		b.Cleanup(s.Shutdown)
	}},
}

func download(b *testing.B, addr, name string, blksize, window int, want int64) client.Result {
	res, err := client.Get(context.Background(), addr, name, io.Discard,
		client.Options{Blksize: blksize, Windowsize: window, Tsize: true, Dally: -1})
	if err != nil {
		b.Fatalf("download from %s: %v", addr, err)
	}
	if res.Bytes != want {
		b.Fatalf("downloaded %d bytes, want %d", res.Bytes, want)
	}
	return res
}

// BenchmarkSingleStream downloads 100 MiB over loopback from each server
// with peerboot's client at blksize 1468 and windowsize 1, 16 and 64 where
// the server supports windowsize.
func BenchmarkSingleStream(b *testing.B) {
	root := fixture(b)
	port := 17100
	for _, s := range servers {
		port++
		b.Run(s.name, func(b *testing.B) {
			s.start(b, root, port)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			for _, w := range s.windows {
				b.Run(fmt.Sprintf("1468x%d", w), func(b *testing.B) { benchDownload(b, addr, w) })
			}
		})
	}
	b.Run("dnsmasq", func(b *testing.B) {
		// dnsmasq's TFTP port is fixed at 69: run it in its own namespace.
		if err := netlab.Available(); err != nil {
			b.Fatal(err)
		}
		l, err := netlab.New("198.18.99.0/24")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		h, err := l.AddHost("dnsmasq", "198.18.99.1")
		if err != nil {
			b.Fatal(err)
		}
		cmd := h.Command(context.Background(), peerBinary(b, "PEERBOOT_DNSMASQ", "dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
			"--port=0", "--enable-tftp=eth0", "--tftp-root="+root, "--listen-address=198.18.99.1", "--bind-interfaces",
			"--pid-file=", "--user=nobody", "--group=nogroup", "--log-facility=/dev/null")
		if err := l.Start(cmd); err != nil {
			b.Fatal(err)
		}
		b.Run("1468x1", func(b *testing.B) {
			var last error
			for i := 0; i < 50; i++ { // wait until dnsmasq answers
				last = h.Do(func() error {
					_, err := client.Get(context.Background(), "198.18.99.1:69", "missing", io.Discard, client.Options{Timeout: 100 * time.Millisecond, Retries: 1})
					if _, ok := err.(*client.ServerError); ok {
						return nil
					}
					return fmt.Errorf("dnsmasq not answering: %v", err)
				})
				if last == nil {
					break
				}
			}
			if last != nil {
				b.Fatal(last)
			}
			var total time.Duration
			for b.Loop() {
				h.Do(func() error {
					total += download(b, "198.18.99.1:69", "single.bin", 1468, 1, singleSize).Duration
					return nil
				})
			}
			b.ReportMetric(float64(singleSize)*float64(b.N)/total.Seconds()/1e6, "MB/s")
		})
	})
}

func benchDownload(b *testing.B, addr string, window int) {
	var total time.Duration
	var res client.Result
	var resent int64
	retrans := peerbootLog.retransmits()
	for b.Loop() {
		res = download(b, addr, "single.bin", 1468, window, singleSize)
		total += res.Duration
		resent += res.AcksResent
	}
	// Loss evidence: ACKs the client had to repeat (gaps, timeouts) and,
	// for peerboot, the DATA blocks its server sent again (from its log).
	b.ReportMetric(float64(resent)/float64(b.N), "acks-resent/op")
	if strings.HasPrefix(b.Name(), "BenchmarkSingleStream/peerboot/") {
		// The last transfer's log line may trail the client's return.
		for i := 0; i < 100 && strings.Count(peerbootLogText(), "transfer ended") < int(peerbootTransfers.Add(int64(b.N))); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(float64(peerbootLog.retransmits()-retrans)/float64(b.N), "server-retransmits/op")
	}
	if window > 1 && res.Windowsize != window {
		b.Fatalf("server granted windowsize %d, asked %d", res.Windowsize, window)
	}
	b.ReportMetric(float64(singleSize)*float64(b.N)/total.Seconds()/1e6, "MB/s")
}

// BenchmarkVersusAtftpd measures the acceptance ratios in pairs: each
// round downloads 100 MiB from peerboot at 1468 x 16 and x 64 and from
// atftpd at x 16 and x 64, back to back with the same client, so a load
// spike from other processes hits both sides of a ratio alike. It reports
// the median over the rounds of peerboot/atftpd at x 16 and of peerboot at
// x 64 over atftpd's better window of the same round.
func BenchmarkVersusAtftpd(b *testing.B) {
	root := fixture(b)
	const pbPort, atPort = 17301, 17302
	servers[0].start(b, root, pbPort)
	servers[1].start(b, root, atPort)
	pb, at := fmt.Sprintf("127.0.0.1:%d", pbPort), fmt.Sprintf("127.0.0.1:%d", atPort)
	rate := func(addr string, window int) float64 {
		res := download(b, addr, "single.bin", 1468, window, singleSize)
		if res.Windowsize != window {
			b.Fatalf("%s granted windowsize %d, asked %d", addr, res.Windowsize, window)
		}
		return float64(singleSize) / res.Duration.Seconds() / 1e6
	}
	var r16, r64, pb16, pb64, at16, at64 []float64
	for b.Loop() {
		p16, a16, p64, a64 := rate(pb, 16), rate(at, 16), rate(pb, 64), rate(at, 64)
		pb16, pb64, at16, at64 = append(pb16, p16), append(pb64, p64), append(at16, a16), append(at64, a64)
		r16 = append(r16, p16/a16)
		r64 = append(r64, p64/max(a16, a64))
	}
	b.ReportMetric(median(r16), "ratio16")
	b.ReportMetric(median(r64), "ratio64-vs-best")
	b.ReportMetric(median(pb16), "peerboot16-MB/s")
	b.ReportMetric(median(pb64), "peerboot64-MB/s")
	b.ReportMetric(median(at16), "atftpd16-MB/s")
	b.ReportMetric(median(at64), "atftpd64-MB/s")
}

// BenchmarkClientModes shows how much the shared client's way of waiting
// moves the acceptance ratio: in each round it downloads 100 MiB from
// peerboot at 1468 x 64 and from atftpd at x 16 and x 64 with the client
// waiting in Go's network poller ("poller"), in a blocking read
// ("blocking"), and in a blocking read that yields its CPU after part of
// a window ("yield", the default). It reports, per mode, the median
// peerboot and best-atftpd rates and their ratio.
func BenchmarkClientModes(b *testing.B) {
	root := fixture(b)
	const pbPort, atPort = 17311, 17312
	servers[0].start(b, root, pbPort)
	servers[1].start(b, root, atPort)
	pb, at := fmt.Sprintf("127.0.0.1:%d", pbPort), fmt.Sprintf("127.0.0.1:%d", atPort)
	modes := []struct {
		name string
		opts client.Options
	}{
		{"poller", client.Options{Poller: true}},
		{"blocking", client.Options{NoYield: true}},
		{"yield", client.Options{}},
	}
	rate := func(addr string, window int, o client.Options) float64 {
		o.Blksize, o.Windowsize, o.Tsize, o.Dally = 1468, window, true, -1
		res, err := client.Get(context.Background(), addr, "single.bin", io.Discard, o)
		if err != nil || res.Bytes != singleSize {
			b.Fatalf("download from %s: %d bytes, %v", addr, res.Bytes, err)
		}
		return float64(singleSize) / res.Duration.Seconds() / 1e6
	}
	pbRates := make([][]float64, len(modes))
	atRates := make([][]float64, len(modes))
	ratios := make([][]float64, len(modes))
	for b.Loop() {
		for i, m := range modes {
			a16, p64, a64 := rate(at, 16, m.opts), rate(pb, 64, m.opts), rate(at, 64, m.opts)
			pbRates[i] = append(pbRates[i], p64)
			atRates[i] = append(atRates[i], max(a16, a64))
			ratios[i] = append(ratios[i], p64/max(a16, a64))
		}
	}
	for i, m := range modes {
		b.ReportMetric(median(pbRates[i]), m.name+"-peerboot64-MB/s")
		b.ReportMetric(median(atRates[i]), m.name+"-atftpd-best-MB/s")
		b.ReportMetric(median(ratios[i]), m.name+"-ratio64")
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkConcurrent200 runs 200 simultaneous 20 MiB downloads (1468 x 16)
// against one peerboot server process and reports the aggregate MB/s and the
// server's peak resident memory.
func BenchmarkConcurrent200(b *testing.B) {
	root := fixture(b)
	port := 17200
	cmd := startProcess(b, port, peerbootBin, "tftp", "serve", "--root", root, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var wall time.Duration
	for b.Loop() {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, concurrency)
		for i := 0; i < concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := client.Get(context.Background(), addr, "conc.bin", io.Discard,
					client.Options{Blksize: 1468, Windowsize: 16, Tsize: true, Dally: -1, RecvBuffer: 1 << 20, Timeout: 2 * time.Second, Retries: 10})
				if err == nil && res.Bytes != concurrentSize {
					err = fmt.Errorf("got %d bytes", res.Bytes)
				}
				errs <- err
			}()
		}
		wg.Wait()
		wall += time.Since(start)
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatalf("a concurrent transfer failed: %v", err)
			}
		}
	}
	b.ReportMetric(float64(concurrentSize)*concurrency*float64(b.N)/wall.Seconds()/1e6, "MB/s")
	rss := peakRSS(b, cmd.Process.Pid)
	b.ReportMetric(float64(rss)/(1<<20), "peakRSS-MiB")
	if rss >= 150<<20 {
		b.Errorf("server peak RSS %d MiB, want < 150 MiB", rss>>20)
	}
}

func peerbootLogText() string {
	peerbootLog.mu.Lock()
	defer peerbootLog.mu.Unlock()
	return peerbootLog.buf.String()
}

// peerbootTransfers counts the downloads made from the peerboot server.
var peerbootTransfers atomic.Int64

func peakRSS(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
