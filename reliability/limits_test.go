package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	codec "github.com/peerboot/peerboot/codec/tftp"
)

// tftpClient is one client socket of the flood: a good one downloads the
// file (retrying when the server is busy), a silent one asks and never
// acknowledges anything.
type tftpClient struct {
	fd       int
	silent   bool
	server   unix.Sockaddr // the listening port
	tid      unix.Sockaddr // the transfer's port, once known
	next     uint16        // block expected
	hash     [32]byte
	got      bytes.Buffer
	last     []byte    // last packet sent, for retransmission
	lastSent time.Time // when it went
	retryAt  time.Time // busy: when to ask again
	asks     int
	done     bool
	failed   string
}

type floodResult struct {
	completed, silent, busyRetries, wrongHash int
	failures                                  []string
}

const floodBlksize = 16384

func floodRRQ() []byte {
	var b []byte
	b = append(b, 0, byte(codec.OpRRQ))
	b = append(b, "boot.bin\x00octet\x00blksize\x00"...)
	b = append(b, fmt.Sprint(floodBlksize)...)
	return append(b, 0)
}

func ackPacket(block uint16) []byte {
	return []byte{0, byte(codec.OpACK), byte(block >> 8), byte(block)}
}

func (c *tftpClient) send(pkt []byte, to unix.Sockaddr, now time.Time) {
	c.last, c.lastSent = pkt, now
	unix.Sendto(c.fd, pkt, 0, to) // a lost send is retransmitted on timeout
}

// handle processes one datagram for the client.
func (c *tftpClient) handle(pkt []byte, from unix.Sockaddr, now time.Time, want [32]byte, res *floodResult, mu *sync.Mutex) {
	if c.done || len(pkt) < 4 {
		return
	}
	if c.silent {
		// Never acknowledge: the server keeps the session until it gives
		// up. Stop re-asking once it answered.
		c.asks = 1 << 20
		return
	}
	op := codec.Opcode(binary.BigEndian.Uint16(pkt))
	switch op {
	case codec.OpERROR:
		e, _ := codec.ParseError(pkt)
		if e.Code == codec.ErrCodeNotDefined && string(e.Message) == "server busy" {
			// Like firmware retrying: ask again a little later.
			c.retryAt = now.Add(time.Duration(50+rand.IntN(200)) * time.Millisecond)
			c.tid, c.next = nil, 0
			c.got.Reset()
			c.last = nil
			mu.Lock()
			res.busyRetries++
			mu.Unlock()
			return
		}
		c.done, c.failed = true, fmt.Sprintf("ERROR %d %q", e.Code, e.Message)
	case codec.OpOACK:
		if c.tid == nil {
			c.tid, c.next = from, 1
		}
		c.send(ackPacket(0), c.tid, now)
	case codec.OpDATA:
		if c.tid == nil {
			c.tid, c.next = from, 1
		}
		block := binary.BigEndian.Uint16(pkt[2:])
		if block != c.next {
			// A duplicate: acknowledge what we have.
			c.send(ackPacket(c.next-1), c.tid, now)
			return
		}
		c.got.Write(pkt[4:])
		c.send(ackPacket(block), c.tid, now)
		c.next++
		if len(pkt)-4 < floodBlksize {
			c.done = true
			c.hash = sha256.Sum256(c.got.Bytes())
			mu.Lock()
			if c.hash == want {
				res.completed++
			} else {
				res.wrongHash++
			}
			mu.Unlock()
		}
	}
}

// tick retransmits or re-asks.
func (c *tftpClient) tick(now time.Time) {
	if c.done {
		return
	}
	switch {
	case c.silent:
		if c.asks < 3 && now.Sub(c.lastSent) > 2*time.Second {
			c.asks++
			c.send(floodRRQ(), c.server, now)
		}
	case c.last == nil && !c.retryAt.IsZero() && now.After(c.retryAt):
		c.retryAt = time.Time{}
		c.send(floodRRQ(), c.server, now)
	case c.last != nil && now.Sub(c.lastSent) > 2*time.Second:
		to := c.server
		if c.tid != nil {
			to = c.tid
		}
		c.send(c.last, to, now)
	}
}

// runFlood drives clients from one goroutine with epoll until every good
// client is done or the deadline passes.
func runFlood(clients []*tftpClient, want [32]byte, deadline time.Time, res *floodResult, mu *sync.Mutex, pending *atomic.Int64) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	byFD := make(map[int32]*tftpClient, len(clients))
	now := time.Now()
	for _, c := range clients {
		byFD[int32(c.fd)] = c
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
			return err
		}
		c.send(floodRRQ(), c.server, now)
		c.asks = 1
	}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 70000)
	lastTick := now
	for pending.Load() > 0 && time.Now().Before(deadline) {
		n, err := unix.EpollWait(ep, events, 100)
		if err != nil && err != unix.EINTR {
			return err
		}
		now = time.Now()
		for _, ev := range events[:max(n, 0)] {
			c := byFD[ev.Fd]
			for {
				m, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
				if err != nil {
					break
				}
				wasDone := c.done
				c.handle(buf[:m], from, now, want, res, mu)
				if c.done && !wasDone && !c.silent {
					pending.Add(-1)
				}
			}
		}
		if now.Sub(lastTick) > 50*time.Millisecond {
			lastTick = now
			for _, c := range clients {
				c.tick(now)
			}
		}
	}
	return nil
}

// TestTenThousandConcurrentTFTPRequests floods a real `peerboot tftp
// serve` with 10,000 read requests at once from 10,000 client sockets,
// half of which never acknowledge anything. The server runs with
// --max-sessions 1024 so the cap is reached: its memory and file
// descriptors stay bounded (more requests get "server busy", which the
// good clients retry like firmware does), the acknowledging half all complete with the right
// sha256, and the descriptors go back down once the silent sessions time
// out.
func TestTenThousandConcurrentTFTPRequests(t *testing.T) {
	const (
		total       = 10000
		maxSessions = 1024
		workers     = 4
		fileSize    = 3*floodBlksize + 848
	)
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < total+1024 {
		rl.Cur = max(rl.Max, total+1024)
		rl.Max = rl.Cur
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatalf("need %d file descriptors (the test runs as root): %v", total+1024, err)
		}
	}
	root := t.TempDir()
	data := make([]byte, fileSize)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	if err := os.WriteFile(filepath.Join(root, "boot.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	srv, addr := startTFTP(t, root, "--max-sessions", fmt.Sprint(maxSessions), "--timeout", "1s", "--retries", "5")
	pid := srv.cmd.Process.Pid
	ap := netip.MustParseAddrPort(addr)
	server := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}

	rss0, err := rssKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	fd0, err := fdCount(pid)
	if err != nil {
		t.Fatal(err)
	}

	clients := make([]*tftpClient, total)
	for i := range clients {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		clients[i] = &tftpClient{fd: fd, silent: i%2 == 1, server: server}
	}
	defer func() {
		for _, c := range clients {
			unix.Close(c.fd)
		}
	}()

	// Watch the server while the flood runs.
	var peakRSS, peakFD atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			if r, err := rssKiB(pid); err == nil && r > peakRSS.Load() {
				peakRSS.Store(r)
			}
			if n, err := fdCount(pid); err == nil && int64(n) > peakFD.Load() {
				peakFD.Store(int64(n))
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()

	var res floodResult
	var mu sync.Mutex
	var pending atomic.Int64
	pending.Store(total / 2)
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		part := clients[w*total/workers : (w+1)*total/workers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runFlood(part, want, deadline, &res, &mu, &pending); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The silent sessions time out (1 s, 5 retries with backoff); the
	// descriptors must come back down.
	settleDeadline := time.Now().Add(60 * time.Second)
	fdAfter := 0
	for {
		fdAfter, err = fdCount(pid)
		if err != nil {
			t.Fatal(err)
		}
		if fdAfter <= fd0+8 || time.Now().After(settleDeadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the fd count with a deadline
	}
	close(stop)
	<-watched
	rssAfter, _ := rssKiB(pid)

	for _, c := range clients {
		if !c.silent && c.failed != "" {
			res.failures = append(res.failures, c.failed)
		}
	}
	t.Logf("%d requests (%d never acknowledging): %d/%d good downloads complete in %v, %d busy retries; server RSS %d KiB -> peak %d KiB -> %d KiB after; fds %d -> peak %d -> %d after",
		total, total/2, res.completed, total/2, elapsed.Round(time.Millisecond), res.busyRetries, rss0, peakRSS.Load(), rssAfter, fd0, peakFD.Load(), fdAfter)
	if !srv.running() {
		t.Fatal("the server died")
	}
	if res.completed != total/2 {
		t.Errorf("%d of %d acknowledging clients completed (%d wrong sha256, failures %v)", res.completed, total/2, res.wrongHash, firstFew(res.failures, 5))
	}
	if res.wrongHash != 0 {
		t.Errorf("%d downloads with the wrong sha256", res.wrongHash)
	}
	if p := peakFD.Load(); p > int64(fd0+maxSessions+64) {
		t.Errorf("server held %d file descriptors at peak; the bound is %d sessions + %d at rest", p, maxSessions, fd0)
	}
	// Each session holds a socket and little else: 4096 sessions must fit
	// in well under 256 MiB.
	if p := peakRSS.Load(); p > 256<<10 {
		t.Errorf("server RSS peaked at %d KiB, want under 256 MiB", p)
	}
	if fdAfter > fd0+8 {
		t.Errorf("file descriptors did not come back down: %d at rest before, %d after the flood", fd0, fdAfter)
	}
}

func firstFew(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
