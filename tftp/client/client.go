package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

// Options are what the client asks the server for. Zero values mean "do
// not ask" (blksize, windowsize) or the default.
type Options struct {
	Blksize    int           // 8-65464; 0 = do not ask (512)
	Windowsize int           // 1-65535; 0 = do not ask (1)
	Tsize      bool          // ask the server for the file size
	Timeout    time.Duration // retransmission timeout (default 1s); sent as the timeout option when >= 1s and AskTimeout
	AskTimeout bool
	Retries    int // retransmissions without progress before giving up (default 5)
	RecvBuffer int // SO_RCVBUF in bytes (default 4 MiB; forced when running as root)
	// Dally is how long to stay after the final ACK to acknowledge the
	// last block again if the server resends it (its ACK was lost).
	// Default 200ms; negative disables. Not counted in Result.Duration.
	Dally time.Duration
	// Poller makes the download wait in Go's network poller even when a
	// blocking slot is free. By default up to GOMAXPROCS downloads of the
	// process at a time wait for DATA in a blocking read on their own
	// thread (udpbatch.Socket), which a server's datagram wakes directly;
	// the others use the poller, where many cost no thread each.
	Poller bool
	// NoYield keeps a blocking download from yielding its CPU after part
	// of a window has arrived (see receive); for comparisons.
	NoYield bool
}

// flushWriter is the download's output: buffered, or discarding.
type flushWriter interface {
	io.Writer
	Flush() error
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Flush() error                { return nil }

// blockingDownloads counts the downloads using a blocking socket.
var blockingDownloads udpbatch.Slots

// Result describes a finished download.
type Result struct {
	Bytes      int64
	Tsize      int64 // -1 when the server did not send it
	Blksize    int
	Windowsize int
	OACK       bool // the server acknowledged options
	Duration   time.Duration
	AcksResent int64 // ACKs sent again after a timeout, gap or duplicate
	Timeouts   int64 // receive timeouts after the transfer started (each resends the last ACK)
	Syscalls   uint64
}

// ServerError is an ERROR packet from the server.
type ServerError struct {
	Code    codec.ErrorCode
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("server error %d (%v): %s", e.Code, e.Code, e.Message)
}

// reAckInterval is how long after answering a retransmitted block the
// client answers the next one again: shorter than any server's
// retransmission timeout, longer than one burst of duplicates.
const reAckInterval = 10 * time.Millisecond

// gapThreshold is how many later blocks prove a gap rather than reordering.
const gapThreshold = 2

// ErrTimeout means the server stopped answering.
var ErrTimeout = errors.New("tftp: timeout")

// Get downloads name from server ("host:port") into w.
func Get(ctx context.Context, server, name string, w io.Writer, opts Options) (Result, error) {
	res := Result{Tsize: -1, Blksize: codec.DefaultBlksize, Windowsize: 1}
	start := time.Now()
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.Dally == 0 {
		opts.Dally = 200 * time.Millisecond
	}
	if opts.RecvBuffer <= 0 {
		opts.RecvBuffer = 4 << 20
	}
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return res, fmt.Errorf("tftp get: %w", err)
	}
	c := &getter{opts: opts, res: &res, ctx: ctx}
	if !opts.Poller && blockingDownloads.TryTake(runtime.GOMAXPROCS(0)) {
		defer blockingDownloads.Release()
		c.sock, err = udpbatch.NewSocket(netip.Addr{}, sa.AddrPort().Addr())
		if err != nil {
			return res, fmt.Errorf("tftp get: %w", err)
		}
		defer c.sock.Close()
	} else {
		c.conn, err = net.ListenUDP("udp", nil)
		if err != nil {
			return res, fmt.Errorf("tftp get: %w", err)
		}
		defer c.conn.Close()
		stop := context.AfterFunc(ctx, func() { c.conn.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	setRecvBuffer(c.rawConn(), opts.RecvBuffer)

	req := codec.Request{Opcode: codec.OpRRQ, Filename: []byte(name), Mode: codec.ModeOctet}
	if opts.Blksize > 0 {
		req.SetBlksize(int64(opts.Blksize))
	}
	if opts.Tsize {
		req.SetTsize(0)
	}
	if opts.AskTimeout && opts.Timeout >= time.Second {
		req.SetTimeout(int64(opts.Timeout / time.Second))
	}
	if opts.Windowsize > 0 {
		req.SetWindowsize(int64(opts.Windowsize))
	}
	rrq, err := codec.AppendRequest(nil, &req)
	if err != nil {
		return res, fmt.Errorf("tftp get: build request: %w", err)
	}
	if w == io.Discard {
		c.out = discard{} // nothing to buffer: skip copying every payload into a buffer
	} else {
		c.out = bufio.NewWriterSize(w, 1<<20)
	}
	if err := c.request(sa.AddrPort(), rrq); err != nil {
		return res, err
	}
	err = c.receive()
	res.Duration = time.Since(start)
	if err == nil {
		c.dally()
	}
	if ferr := c.out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("tftp get: write: %w", ferr)
	}
	if err == nil && res.Tsize >= 0 && res.Tsize != res.Bytes {
		err = fmt.Errorf("tftp get: received %d bytes, server announced tsize %d", res.Bytes, res.Tsize)
	}
	return res, err
}

type getter struct {
	ctx   context.Context
	conn  *net.UDPConn     // waits in the network poller, or
	sock  *udpbatch.Socket // blocks its thread (see Options.Poller)
	opts  Options
	res   *Result
	out   flushWriter
	tid   netip.AddrPort
	first []byte // first DATA packet when the server skipped the OACK
	ack   [4]byte
	rx    *udpbatch.Receiver

	expected   int64 // next absolute block
	sinceAck   int
	gapAcked   bool
	outOfOrder int // later blocks seen since the gap opened
	// Blocks that arrived ahead of a missing one, kept so the server's
	// resend of the gap completes the window at once.
	slots      [][]byte
	slotBlock  []int64
	dupAcked   bool // answered a retransmission since the last new block
	dupAckedAt time.Time
	lastAcked  int64
	preAcked   int64 // window end acknowledged by ackAhead
	gro        bool  // UDP_GRO on: a datagram may hold several packets
	stride     int   // 4 + blksize
	segs       [][]byte
}

func setRecvBuffer(rc syscall.RawConn, n int) {
	if rc == nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
}

// request sends the RRQ until the server answers with OACK or DATA 1.
func (c *getter) request(server netip.AddrPort, rrq []byte) error {
	buf := make([]byte, 65536)
	for try := 0; try <= c.opts.Retries; try++ {
		if err := c.sendTo(server, rrq); err != nil {
			return fmt.Errorf("tftp get: send request: %w", err)
		}
		deadline := time.Now().Add(c.opts.Timeout)
		for {
			n, from, err := c.readFrom(buf, deadline)
			if err != nil {
				if c.ctx.Err() != nil {
					return c.ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return fmt.Errorf("tftp get: %w", err)
			}
			if from.Addr().Unmap() != server.Addr().Unmap() {
				continue // not our server
			}
			pkt := buf[:n]
			op, err := codec.PacketOpcode(pkt)
			if err != nil {
				continue
			}
			switch op {
			case codec.OpERROR:
				e, _ := codec.ParseError(pkt)
				return &ServerError{Code: e.Code, Message: string(e.Message)}
			case codec.OpOACK:
				var o codec.Options
				if err := codec.ParseOACK(pkt, &o); err != nil {
					return fmt.Errorf("tftp get: bad OACK: %w", err)
				}
				if err := c.applyOACK(&o); err != nil {
					c.sendTo(from, codec.AppendError(nil, codec.ErrCodeOptionNegotiation, err.Error())) //nolint:errcheck // best effort
					return err
				}
				return c.connect(from)
			case codec.OpDATA:
				d, err := codec.ParseData(pkt)
				if err != nil || d.Block != 1 {
					continue
				}
				c.first = append([]byte(nil), pkt...)
				return c.connect(from)
			}
		}
	}
	return fmt.Errorf("%w: no answer to the request", ErrTimeout)
}

func (c *getter) applyOACK(o *codec.Options) error {
	c.res.OACK = true
	if o.Has(codec.OptBlksize) {
		if o.Blksize < codec.MinBlksize || o.Blksize > codec.MaxBlksize || (c.opts.Blksize > 0 && int(o.Blksize) > c.opts.Blksize) || c.opts.Blksize == 0 {
			return fmt.Errorf("tftp get: server offered blksize %d", o.Blksize)
		}
		c.res.Blksize = int(o.Blksize)
	}
	if o.Has(codec.OptWindowsize) {
		if o.Windowsize < 1 || (c.opts.Windowsize > 0 && int(o.Windowsize) > c.opts.Windowsize) || c.opts.Windowsize == 0 {
			return fmt.Errorf("tftp get: server offered windowsize %d", o.Windowsize)
		}
		c.res.Windowsize = int(o.Windowsize)
	}
	if o.Has(codec.OptTsize) {
		c.res.Tsize = o.Tsize
	}
	return nil
}

func (c *getter) sendTo(to netip.AddrPort, b []byte) error {
	if c.sock != nil {
		return c.sock.WriteTo(b, to)
	}
	_, err := c.conn.WriteToUDPAddrPort(b, to)
	return err
}

// write sends b to the server's transfer ID (after connect).
func (c *getter) write(b []byte) {
	if c.sock != nil {
		c.sock.Write(b)
		return
	}
	c.conn.Write(b)
}

func (c *getter) rawConn() syscall.RawConn { return udpbatch.SyscallConn(c.sock, c.conn) }

// readFrom reads one datagram and its source before deadline.
func (c *getter) readFrom(buf []byte, deadline time.Time) (int, netip.AddrPort, error) {
	if c.sock == nil {
		c.conn.SetReadDeadline(deadline)
		if err := c.ctx.Err(); err != nil {
			return 0, netip.AddrPort{}, err // canceled before the deadline was set: the cancel's deadline was overwritten
		}
		return c.conn.ReadFromUDPAddrPort(buf)
	}
	var n int
	var from netip.AddrPort
	err := udpbatch.WaitUntil(c.ctx, deadline, func(timeout time.Duration) (err error) {
		n, from, err = c.sock.RecvFrom(buf, timeout)
		return err
	})
	return n, from, err
}

// recvBatch reads a batch of datagrams with c.rx before deadline.
func (c *getter) recvBatch(deadline time.Time) (int, error) {
	if c.sock == nil {
		c.conn.SetReadDeadline(deadline)
		if err := c.ctx.Err(); err != nil {
			return 0, err // canceled before the deadline was set: the cancel's deadline was overwritten
		}
		return c.rx.Recv()
	}
	var n int
	err := udpbatch.WaitUntil(c.ctx, deadline, func(timeout time.Duration) (err error) {
		if err := c.sock.RecvTimeout(timeout); err != nil {
			return err
		}
		n, err = c.rx.Recv()
		return err
	})
	return n, err
}

// connect fixes the server's transfer ID: the socket then only receives
// from it, which lets recvmmsg read batches without checking sources.
func (c *getter) connect(tid netip.AddrPort) error {
	c.tid = tid
	rc := c.rawConn()
	if rc == nil {
		return errors.New("tftp get: no raw socket")
	}
	if c.sock != nil {
		if err := c.sock.Connect(tid); err != nil {
			return fmt.Errorf("tftp get: %w", err)
		}
	} else {
		var cerr error
		rc.Control(func(fd uintptr) {
			var sa unix.Sockaddr
			a := tid.Addr()
			if a.Is4() || a.Is4In6() {
				sa = &unix.SockaddrInet4{Port: int(tid.Port()), Addr: a.Unmap().As4()}
			} else {
				sa = &unix.SockaddrInet6{Port: int(tid.Port()), Addr: a.As16()}
			}
			cerr = unix.Connect(int(fd), sa)
		})
		if cerr != nil {
			return fmt.Errorf("tftp get: connect to %v: %w", tid, cerr)
		}
	}
	c.stride = c.res.Blksize + 4
	batch, size := min(max(c.res.Windowsize, 1), 64), c.stride
	if c.res.Windowsize > 1 && c.stride < maxGROBytes/2 && enableGRO(rc) {
		// The kernel hands over a server's UDP GSO train (or a train its
		// NIC coalesced) as one datagram: fewer, larger copies.
		c.gro = true
		batch, size = min(batch, groBatch), maxGROBytes
	}
	var err error
	if c.sock != nil {
		c.rx = udpbatch.NewSocketReceiver(c.sock, batch, size)
	} else if c.rx, err = udpbatch.NewReceiver(c.conn, batch, size); err != nil {
		return err
	}
	c.segs = make([][]byte, 0, batch*(size/c.stride+1))
	return nil
}

// maxGROBytes is the largest coalesced datagram; groBatch how many of them
// one receive call takes.
const (
	maxGROBytes = 65535
	groBatch    = 8
)

// enableGRO turns on UDP_GRO (Linux 5.0+) on the socket.
func enableGRO(rc syscall.RawConn) bool {
	ok := false
	rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return ok
}

// segments splits the n datagrams of the last receive into TFTP packets:
// a coalesced datagram holds packets of one size back to back (the last
// possibly shorter), and a DATA packet is never longer than stride.
func (c *getter) segments(n int) [][]byte {
	c.segs = c.segs[:0]
	for i := 0; i < n; i++ {
		pkt := c.rx.Packet(i)
		if !c.gro || len(pkt) <= c.stride {
			c.segs = append(c.segs, pkt)
			continue
		}
		for off := 0; off < len(pkt); off += c.stride {
			c.segs = append(c.segs, pkt[off:min(off+c.stride, len(pkt))])
		}
	}
	return c.segs
}

func (c *getter) sendAck(block int64) {
	c.write(codec.AppendAck(c.ack[:0], uint16(block)))
	c.sinceAck = 0
	c.lastAcked = block
}

func (c *getter) receive() error {
	c.expected = 1
	if c.first != nil {
		if done, err := c.handle(c.first); done || err != nil {
			return err
		}
	} else {
		c.sendAck(0)
	}
	timeouts := 0
	for {
		if c.sock != nil && c.sinceAck > 0 && !c.opts.NoYield {
			// Part of a window is in: before blocking for the rest, let a
			// sender that shares this CPU (a server on the same host) run
			// on, so the rest arrives as one batch instead of one wake-up
			// per datagram, each stealing the sender's CPU. With nothing
			// else runnable here it returns at once.
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		n, err := c.recvBatch(time.Now().Add(c.opts.Timeout))
		c.res.Syscalls = c.rx.Syscalls
		if err != nil {
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				timeouts++
				c.res.Timeouts++
				if timeouts > c.opts.Retries {
					return fmt.Errorf("%w: no DATA after block %d", ErrTimeout, c.expected-1)
				}
				c.sendAck(c.expected - 1)
				c.res.AcksResent++
				continue
			}
			if errors.Is(err, unix.ECONNREFUSED) {
				return fmt.Errorf("tftp get: server went away: %w", err)
			}
			return fmt.Errorf("tftp get: receive: %w", err)
		}
		timeouts = 0
		dupAcked := false
		segs := c.segments(n)
		c.ackAhead(segs)
		for _, pkt := range segs {
			if op, _ := codec.PacketOpcode(pkt); op == codec.OpOACK && c.expected == 1 && !dupAcked {
				c.sendAck(0) // our ACK 0 was lost
				dupAcked = true
				continue
			}
			done, err := c.handle(pkt)
			if err != nil || done {
				return err
			}
		}
	}
}

// ackAhead sends the ACK that ends the current window before the batch
// of n datagrams is copied out, when the batch holds the rest of the window
// in order: the server starts the next window while the client copies.
func (c *getter) ackAhead(segs [][]byte) {
	need := c.res.Windowsize - c.sinceAck
	if c.res.Windowsize < 2 || c.gapAcked || need > len(segs) {
		return
	}
	for i, pkt := range segs[:need] {
		if len(pkt) != 4+c.res.Blksize || pkt[0] != 0 || pkt[1] != byte(codec.OpDATA) ||
			uint16(pkt[2])<<8|uint16(pkt[3]) != uint16(c.expected+int64(i)) {
			return // a short (last) block, a gap or anything else: the normal path decides
		}
	}
	c.preAcked = c.expected + int64(need) - 1
	sinceAck := c.sinceAck
	c.sendAck(c.preAcked)
	c.sinceAck = sinceAck // handle counts the batch's blocks and resets it at the window end
}

// handle processes one datagram. It reports done after the last block.
func (c *getter) handle(pkt []byte) (bool, error) {
	op, err := codec.PacketOpcode(pkt)
	if err != nil {
		return false, nil
	}
	switch op {
	case codec.OpERROR:
		e, _ := codec.ParseError(pkt)
		return false, &ServerError{Code: e.Code, Message: string(e.Message)}
	case codec.OpDATA:
	default:
		return false, nil
	}
	d, err := codec.ParseData(pkt)
	if err != nil {
		return false, nil
	}
	delta := d.Block - uint16(c.expected)
	switch {
	case delta == 0:
		if len(d.Payload) > c.res.Blksize {
			return false, fmt.Errorf("tftp get: block %d carries %d bytes, blksize is %d", c.expected, len(d.Payload), c.res.Blksize)
		}
		c.gapAcked = false
		c.outOfOrder = 0
		c.dupAcked = false
		payload := d.Payload
		filled := false
		for {
			if _, err := c.out.Write(payload); err != nil {
				c.write(codec.AppendError(nil, codec.ErrCodeDiskFull, "write failed"))
				return false, fmt.Errorf("tftp get: write: %w", err)
			}
			c.res.Bytes += int64(len(payload))
			c.sinceAck++
			last := len(payload) < c.res.Blksize
			c.expected++
			if last {
				c.sendAck(c.expected - 1)
				return true, nil
			}
			// Blocks that overtook a lost one continue the stream.
			next, ok := c.takeBuffered(c.expected)
			if !ok {
				break
			}
			payload = next
			filled = true
		}
		// After a hole is filled from kept blocks the server is resending;
		// tell it at once how far the stream now reaches.
		switch {
		case c.preAcked == c.expected-1 && c.sinceAck >= c.res.Windowsize:
			c.sinceAck = 0 // acknowledged by ackAhead before the batch was copied
		case filled || c.sinceAck >= c.res.Windowsize:
			c.sendAck(c.expected - 1)
		}
	case delta < 0x8000:
		// A later block: one was lost or overtaken. Report the gap once,
		// after a second later block, so one reordered datagram does not
		// cost a window.
		c.outOfOrder++
		c.buffer(c.expected+int64(delta), d.Payload)
		if !c.gapAcked && c.outOfOrder >= gapThreshold {
			c.sendAck(c.expected - 1)
			c.res.AcksResent++
			c.gapAcked = true
		}
	default:
		// An earlier block: the server is retransmitting, so it missed or
		// ignored our last ACK. Tell it where we are, once per episode.
		// If that ACK is lost too, the server resends again: answer
		// again once a resend round can have passed.
		if !c.dupAcked || time.Since(c.dupAckedAt) >= reAckInterval {
			c.sendAck(c.expected - 1)
			c.res.AcksResent++
			c.dupAcked = true
			c.dupAckedAt = time.Now()
		}
	}
	return false, nil
}

// maxReorderBytes bounds the memory kept for blocks that arrive early.
const maxReorderBytes = 4 << 20

func (c *getter) buffer(block int64, payload []byte) {
	if c.slots == nil {
		n := min(2*c.res.Windowsize, 128, maxReorderBytes/c.res.Blksize)
		if n < 2 {
			return
		}
		c.slots = make([][]byte, n)
		c.slotBlock = make([]int64, n)
		backing := make([]byte, n*c.res.Blksize)
		for i := range c.slots {
			c.slots[i] = backing[i*c.res.Blksize : i*c.res.Blksize : (i+1)*c.res.Blksize]
		}
	}
	if block-c.expected >= int64(len(c.slots)) {
		return
	}
	i := block % int64(len(c.slots))
	c.slots[i] = append(c.slots[i][:0], payload...)
	c.slotBlock[i] = block
}

func (c *getter) takeBuffered(block int64) ([]byte, bool) {
	if c.slots == nil {
		return nil, false
	}
	i := block % int64(len(c.slots))
	if c.slotBlock[i] != block {
		return nil, false
	}
	c.slotBlock[i] = 0
	return c.slots[i], true
}

// dally answers a resent final block with the final ACK until the server
// goes quiet (RFC 1350 section 6).
func (c *getter) dally() {
	if c.opts.Dally < 0 {
		return
	}
	deadline := time.Now().Add(c.opts.Dally)
	for c.ctx.Err() == nil {
		n, err := c.recvBatch(deadline)
		if err != nil {
			return
		}
		for _, pkt := range c.segments(n) {
			if d, err := codec.ParseData(pkt); err == nil && d.Block == uint16(c.lastAcked) {
				c.sendAck(c.lastAcked)
				c.res.AcksResent++
			}
		}
	}
}
