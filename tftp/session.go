package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

const (
	minRTO      = 20 * time.Millisecond
	initialRTO  = 250 * time.Millisecond
	inboxLength = 64
)

// inPacket is one datagram handed to a single-port session: ACKs fit in b;
// an upload's DATA packets longer than b are copied to big.
type inPacket struct {
	n   int
	b   [516]byte
	big []byte
}

func (p *inPacket) bytes() []byte {
	if p.big != nil {
		return p.big
	}
	return p.b[:p.n]
}

// session is one read transfer. All its buffers are allocated when it
// starts; the steady state (fill a window, send it, read ACKs) allocates
// nothing.
type session struct {
	srv    *Server
	peer   netip.AddrPort
	conn   *net.UDPConn     // connected per-transfer socket, or the listener
	sock   *udpbatch.Socket // instead of conn: a blocking per-transfer socket
	single bool
	inbox  chan inPacket
	timer  *time.Timer
	sender *udpbatch.Sender
	file   *sharedFile
	upload NewFile // set for a write request

	oack    []byte // nil when no option was accepted
	blksize int
	window  int // negotiated windowsize
	cwnd    int // blocks per burst (AIMD), 1..window
	timeout time.Duration
	size    int64
	nblocks int64 // DATA packets in the transfer (the last one is short)
	stride  int

	wins [2]windowBuf // the window in flight and the next one, prefetched
	hdrs []byte       // with a mapped file: the window's DATA headers
	vec  []unix.Iovec // with a mapped file: header and payload of each block
	iovs []unix.Iovec // preadv targets
	rbuf []byte       // received datagram
	ebuf [128]byte    // outgoing ERROR

	pollConn syscall.RawConn
	pollFn   func(fd uintptr) bool
	polled   int
	pollErr  error

	heard        bool // an ACK (any block) arrived this round
	srtt, rttvar time.Duration
	highestSent  int64
	stats        TransferStats
}

func (srv *Server) newSession(ctx context.Context, listener *net.UDPConn, peer netip.AddrPort, local netip.Addr,
	name string, f *sharedFile, up NewFile, req *codec.Options) (*session, error) {
	s := &session{srv: srv, peer: peer, file: f, upload: up, timeout: srv.cfg.Timeout,
		stats: TransferStats{Client: peer.String(), File: name, Upload: up != nil}}
	if f != nil {
		s.size = f.Size()
	} else if req.Has(codec.OptTsize) {
		s.size = req.Tsize // announced by the uploading client
	}
	s.stats.Size = s.size
	if srv.cfg.SinglePort {
		s.conn, s.single = listener, true
		s.inbox = make(chan inPacket, inboxLength)
		s.timer = time.NewTimer(time.Hour)
		s.timer.Stop()
	} else {
		if up == nil && srv.blocking.TryTake(srv.cfg.BlockingSessions) {
			sock, err := udpbatch.DialSocket(local, peer)
			if err != nil {
				srv.blocking.Release()
				return nil, fmt.Errorf("transfer socket: %w", err)
			}
			s.sock = sock
		} else {
			var laddr *net.UDPAddr
			if local.IsValid() {
				laddr = &net.UDPAddr{IP: local.AsSlice()}
			}
			c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(peer))
			if err != nil {
				return nil, fmt.Errorf("transfer socket: %w", err)
			}
			s.conn = c
		}
		// Two windows of the largest size granted fit in the send buffer
		// (default 208 KiB here); forced past net.core.wmem_max when
		// running as root.
		setSocketBuffer(s.rawConn(), unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, 2*srv.cfg.MaxWindowBytes)
	}
	// Negotiate (RFC 2347): acknowledge only the options we accept.
	var ack codec.Options
	s.blksize = codec.DefaultBlksize
	s.window = 1
	if req.Has(codec.OptBlksize) {
		if req.Blksize < codec.MinBlksize {
			s.closeConn()
			s.srv.refuse(listener, peer, codec.ErrCodeOptionNegotiation, "blksize below 8", name, nil)
			return nil, nil
		}
		b := min(int(min(req.Blksize, codec.MaxBlksize)), srv.cfg.MaxBlksize)
		if !srv.cfg.IgnorePathMTU && !s.single {
			if mtu := pathMTU(s.rawConn()); mtu > 0 {
				b = max(min(b, mtu-32), codec.MinBlksize)
			}
		}
		s.blksize = b
		ack.SetBlksize(int64(b))
	}
	if req.Has(codec.OptTsize) {
		ack.SetTsize(s.size)
	}
	if req.Has(codec.OptTimeout) && req.Timeout >= codec.MinTimeout && req.Timeout <= codec.MaxTimeout {
		s.timeout = time.Duration(req.Timeout) * time.Second
		ack.SetTimeout(req.Timeout)
	}
	if req.Has(codec.OptWindowsize) && req.Windowsize >= codec.MinWindowsize && req.Windowsize <= codec.MaxWindowsize {
		w := min(int(req.Windowsize), srv.cfg.MaxWindowsize, max(1, srv.cfg.MaxWindowBytes/(s.blksize+4)))
		s.window = w
		ack.SetWindowsize(int64(w))
	}
	if ack.Present != 0 {
		s.oack, _ = codec.AppendOACK(nil, &ack)
	}
	s.cwnd = s.window
	s.stats.MinWindow = s.window
	s.stride = 4 + s.blksize
	s.stats.Blksize, s.stats.Windowsize = s.blksize, s.window
	if up != nil {
		s.rbuf = make([]byte, s.stride+1) // one byte more reveals an oversized block
		return s, nil
	}
	s.nblocks = s.size/int64(s.blksize) + 1
	if f.data != nil && srv.cfg.SendMethod != udpbatch.Plain {
		// Payloads go from the file mapping to the socket: only the
		// DATA headers live in the session.
		s.hdrs = make([]byte, 4*s.window)
		s.vec = make([]unix.Iovec, 2*s.window)
	} else {
		for i := range s.wins {
			s.wins[i].b = make([]byte, s.window*s.stride)
		}
		s.iovs = make([]unix.Iovec, s.window)
	}
	s.rbuf = make([]byte, 1024)
	var dst netip.AddrPort
	if s.single {
		dst = peer
	}
	var sender *udpbatch.Sender
	var err error
	if s.sock != nil {
		sender, err = udpbatch.NewSocketSender(s.sock, dst, s.stride, s.window, srv.cfg.SendMethod)
	} else {
		sender, err = udpbatch.NewSender(s.conn, dst, s.stride, s.window, srv.cfg.SendMethod)
	}
	if err != nil {
		s.closeConn()
		return nil, err
	}
	s.sender = sender
	return s, nil
}

func (s *session) closeConn() {
	if s.sock != nil {
		s.sock.Close()
		s.sock = nil
		s.srv.blocking.Release()
		return
	}
	if !s.single && s.conn != nil {
		s.conn.Close()
	}
}

// rawConn returns the transfer socket for socket options, or nil.
func (s *session) rawConn() syscall.RawConn { return udpbatch.SyscallConn(s.sock, s.conn) }

// localAddr is the transfer's local address (its TID).
func (s *session) localAddr() netip.AddrPort {
	if s.sock != nil {
		return s.sock.LocalAddr()
	}
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// setSocketBuffer sets a socket buffer size, forced when permitted.
func setSocketBuffer(rc syscall.RawConn, opt, forceOpt, n int) {
	if rc == nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, forceOpt, n) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, n)
		}
	})
}

// pathMTU returns the kernel's path MTU for a connected socket, or 0.
func pathMTU(rc syscall.RawConn) int {
	if rc == nil {
		return 0
	}
	mtu := 0
	rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU); err == nil {
			mtu = v
		} else if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU); err == nil {
			mtu = v - 20 // the 32 bytes of headers assume IPv4; IPv6 needs 20 more
		}
	})
	return mtu
}

// deliver hands a datagram from the listener to a single-port session; it
// is dropped when the session's inbox is full.
func (s *session) deliver(pkt []byte) {
	var p inPacket
	if len(pkt) > len(p.b) {
		p.big = append([]byte(nil), pkt...)
	} else {
		p.n = copy(p.b[:], pkt)
	}
	select {
	case s.inbox <- p:
	default:
	}
}

var errClientError = errors.New("client sent ERROR")

func (s *session) run(ctx context.Context) {
	start := time.Now()
	if !s.single && s.conn != nil {
		stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var err error
	if s.upload != nil {
		err = s.receiveUpload(ctx)
	} else {
		err = s.transfer(ctx)
	}
	s.stats.Duration = time.Since(start)
	if s.upload != nil && err == nil {
		s.dallyUpload(ctx)
	}
	s.stats.Err = err
	switch {
	case err == nil:
		s.stats.Outcome = OutcomeComplete
		s.srv.completed.Add(1)
	case errors.Is(err, errClientError):
		s.stats.Outcome = OutcomeClientError
	case errors.Is(err, context.Canceled):
		s.stats.Outcome = OutcomeCanceled
		s.sendError(codec.ErrCodeNotDefined, "server shutting down")
	case errors.Is(err, errTimeout):
		s.stats.Outcome = OutcomeTimeout
		s.sendError(codec.ErrCodeNotDefined, "timeout")
	case errors.Is(err, errTooLarge):
		s.stats.Outcome = OutcomeRefused
		s.sendError(codec.ErrCodeDiskFull, "file too large")
	case errors.Is(err, ErrExists):
		s.stats.Outcome = OutcomeRefused
		s.sendError(codec.ErrCodeFileExists, "file already exists")
	case errors.Is(err, errBadBlock):
		s.stats.Outcome = OutcomeFailed
		s.sendError(codec.ErrCodeIllegalOperation, "block larger than blksize")
	default:
		s.stats.Outcome = OutcomeFailed
		s.sendError(codec.ErrCodeNotDefined, "server error")
	}
	s.closeConn()
	s.srv.bytesSent.Add(uint64(s.stats.SentBytes))
	s.srv.retransmits.Add(uint64(s.stats.Retransmits))
	level := "info"
	if s.stats.Outcome == OutcomeTimeout || s.stats.Outcome == OutcomeFailed {
		level = "warn"
	}
	args := []any{"client", s.stats.Client, "file", s.stats.File, "bytes", s.stats.Bytes, "size", s.stats.Size,
		"upload", s.stats.Upload, "blksize", s.blksize, "windowsize", s.window, "cwnd_min", s.stats.MinWindow,
		"retransmits", s.stats.Retransmits,
		"duration", s.stats.Duration, "outcome", s.stats.Outcome}
	if err != nil {
		args = append(args, "err", err)
	}
	if level == "warn" {
		s.srv.log.Warn("tftp: transfer ended", args...)
	} else {
		s.srv.log.Info("tftp: transfer ended", args...)
	}
	if s.srv.cfg.OnTransfer != nil {
		s.srv.cfg.OnTransfer(s.stats)
	}
}

var errTimeout = errors.New("client stopped acknowledging")

func (s *session) transfer(ctx context.Context) error {
	rto := min(s.timeout, initialRTO)
	if s.oack != nil {
		if err := s.negotiate(ctx, rto); err != nil {
			return err
		}
	}
	base := int64(1)
	timeouts := 0
	lastProgress := time.Now()
	for base <= s.nblocks {
		end := min(base+int64(s.window), s.nblocks+1)
		next := base
		if timeouts > 0 && timeouts%2 == 0 && !s.heard && s.highestSent >= end-1 && end <= s.nblocks {
			// Every other timeout with the whole window out, send the
			// window after it instead. A client that holds this window
			// but whose ACKs were lost may refuse to ACK resent blocks
			// again until its own timer fires, which the resends keep
			// from firing (atftp): the next window is what it waits for.
			// A client that lacks blocks reports its gap as usual; one
			// that answered the last round at all (an ACK for the block
			// before this window) is alive and lacks this window, so it
			// gets no probe.
			next = end
			end = min(end+int64(s.window), s.nblocks+1)
			s.stats.Probes++
		}
		s.heard = false
		first := next
		retransmitted := first <= s.highestSent
		acked := int64(-1)
		var err error
		for next < end {
			burstEnd := min(next+int64(s.cwnd), end)
			if err = s.sendBlocks(next, burstEnd); err != nil {
				return err
			}
			next = burstEnd
			if next < end {
				// Between bursts, take any ACK already queued: one that reports
				// a gap stops the rest of a window the client cannot use. When
				// resending after a loss, give the client one round trip to say
				// how much it already holds before sending more.
				wait := time.Time{}
				if retransmitted && next == first+int64(s.cwnd) {
					wait = time.Now().Add(min(2*s.srtt+time.Millisecond/2, rto))
				}
				if acked, err = s.waitAck(ctx, base, s.highestSent+1, wait); err != nil || acked >= 0 {
					break
				}
			}
		}
		sentAt := time.Now()
		waited := false // the ACK came after the whole round was sent
		if err == nil && acked < 0 {
			// Read the next window while this one's ACK is on its way.
			if err = s.prefetch(end); err != nil {
				return err
			}
			acked, err = s.waitAck(ctx, base, s.highestSent+1, sentAt.Add(rto))
			waited = true
		}
		if err != nil {
			return err
		}
		if acked < 0 { // timeout: resend the window with a smaller burst
			timeouts++
			s.stats.Timeouts++
			s.setCwnd(max(1, s.cwnd/2))
			if s.heard {
				// The client answered (it lacks the window's first block):
				// the path works and the resend was lost, so resend again
				// after one RTO instead of backing off.
				rto = s.rto()
			} else {
				rto = min(2*rto, s.timeout)
			}
			if timeouts > s.srv.cfg.Retries && time.Since(lastProgress) >= s.timeout*time.Duration(s.srv.cfg.Retries) {
				return fmt.Errorf("%w: no ACK for block %d after %d retransmissions", errTimeout, base, timeouts)
			}
			continue
		}
		timeouts = 0
		lastProgress = time.Now()
		if waited && !retransmitted && acked >= first {
			// Karn: only ACKs for blocks sent once; a gap report counts
			// too, or under heavy loss (few windows arrive whole) the RTO
			// would never leave its initial value.
			s.sampleRTT(lastProgress.Sub(sentAt))
		}
		switch {
		case acked >= end-1:
			s.setCwnd(min(s.cwnd+1, s.window))
		case acked >= next-1:
			// Progress past everything sent this round (the client filled
			// a gap from blocks it kept): neither loss nor a full window.
		default:
			s.setCwnd(max(1, s.cwnd/2)) // the client reported a gap
			s.stats.GapRestarts++
		}
		rto = s.rto()
		s.stats.Bytes = min(acked*int64(s.blksize), s.size)
		base = acked + 1
	}
	s.stats.Bytes = s.size
	return nil
}

// negotiate sends the OACK and waits for ACK 0, retransmitting the OACK.
func (s *session) negotiate(ctx context.Context, rto time.Duration) error {
	deadline := time.Now().Add(s.timeout * time.Duration(s.srv.cfg.Retries+1))
	for tries := 0; ; tries++ {
		if err := s.write(s.oack); err != nil {
			return err
		}
		s.stats.SentBytes += int64(len(s.oack))
		sent := time.Now()
		acked, err := s.waitAck(ctx, 0, 1, sent.Add(rto))
		if err != nil {
			return err
		}
		if acked == 0 {
			if tries == 0 {
				s.sampleRTT(time.Since(sent)) // one datagram each way: a clean first sample
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no ACK for the OACK after %d tries", errTimeout, tries+1)
		}
		rto = min(2*rto, s.timeout)
	}
}

// setCwnd changes the burst size and keeps its statistics.
func (s *session) setCwnd(n int) {
	if n > s.cwnd {
		s.stats.WindowIncreases++
	}
	s.cwnd = n
	s.stats.MinWindow = min(s.stats.MinWindow, n)
}

func (s *session) sampleRTT(r time.Duration) {
	if s.srtt == 0 {
		s.srtt, s.rttvar = r, r/2
		return
	}
	// A window acknowledged late because the client waited for its own
	// timer says nothing about the path: let one sample at most quadruple
	// the estimate, so a single outlier cannot inflate the RTO for
	// hundreds of windows while real changes still show within a few.
	r = min(r, 4*s.srtt)
	d := s.srtt - r
	if d < 0 {
		d = -d
	}
	s.rttvar = (3*s.rttvar + d) / 4
	s.srtt = (7*s.srtt + r) / 8
}

func (s *session) rto() time.Duration {
	if s.srtt == 0 {
		return min(s.timeout, initialRTO)
	}
	return min(max(s.srtt+4*s.rttvar, minRTO), s.timeout)
}

// blockLen is the payload length of absolute block n (1-based).
func (s *session) blockLen(n int64) int {
	off := (n - 1) * int64(s.blksize)
	return int(min(int64(s.blksize), s.size-off))
}

// windowBuf holds DATA packets [first, end), stride bytes apart, ready to
// send.
type windowBuf struct {
	b          []byte
	first, end int64
}

func (w *windowBuf) holds(first, end int64) bool {
	return first >= w.first && end <= w.end && first < end
}

// sendBlocks sends blocks [first, end) with one batch, from a window
// buffer that already holds them (prefetched while the previous window's
// ACK was in flight) or after reading a window's worth from first.
func (s *session) sendBlocks(first, end int64) error {
	if s.vec != nil {
		return s.sendMapped(first, end)
	}
	w := &s.wins[0]
	if !w.holds(first, end) {
		w = &s.wins[1]
		if !w.holds(first, end) {
			if s.wins[0].first < s.wins[1].first {
				w = &s.wins[0] // replace the older window
			}
			if err := s.fill(w, first, max(end, min(first+int64(s.window), s.nblocks+1))); err != nil {
				return err
			}
		}
	}
	off := int(first-w.first) * s.stride
	total := int(end-1-first)*s.stride + 4 + s.blockLen(end-1)
	if err := s.sendBatch(w.b[off : off+total]); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if s.highestSent >= first {
		s.stats.Retransmits += min(s.highestSent, end-1) - first + 1
	}
	s.highestSent = max(s.highestSent, end-1)
	s.stats.SentBytes += int64(total)
	return nil
}

// sendMapped sends blocks [first, end) gathered from their headers and
// the file mapping.
func (s *session) sendMapped(first, end int64) error {
	total := 0
	for n := first; n < end; n++ {
		i := int(n - first)
		h := s.hdrs[4*i : 4*i+4]
		codec.PutDataHeader(h, uint16(n)) // block numbers roll over to 0
		s.vec[2*i].Base = &h[0]
		s.vec[2*i].SetLen(4)
		l := s.blockLen(n)
		if l > 0 {
			s.vec[2*i+1].Base = &s.file.data[(n-1)*int64(s.blksize)]
		} else {
			s.vec[2*i+1].Base = &h[0] // the empty last block: no payload
		}
		s.vec[2*i+1].SetLen(l)
		total += 4 + l
	}
	if err := s.sender.SendVec(s.vec[:2*int(end-first)], 2); err != nil {
		return fmt.Errorf("send %s: %w", s.stats.File, err)
	}
	if s.highestSent >= first {
		s.stats.Retransmits += min(s.highestSent, end-1) - first + 1
	}
	s.highestSent = max(s.highestSent, end-1)
	s.stats.SentBytes += int64(total)
	return nil
}

// prefetch reads the window starting at block first into the buffer that
// does not hold the window in flight, unless a buffer holds it already.
func (s *session) prefetch(first int64) error {
	if s.vec != nil || first > s.nblocks || s.wins[0].holds(first, first+1) || s.wins[1].holds(first, first+1) {
		return nil
	}
	w := &s.wins[0]
	if w.holds(first-1, first) {
		w = &s.wins[1]
	}
	return s.fill(w, first, min(first+int64(s.window), s.nblocks+1))
}

// fill lays out the DATA headers of blocks [first, end) in w and reads
// their payloads from the file.
func (s *session) fill(w *windowBuf, first, end int64) error {
	w.first, w.end = 0, 0
	for n := first; n < end; n++ {
		codec.PutDataHeader(w.b[int(n-first)*s.stride:], uint16(n)) // block numbers roll over to 0
	}
	if err := s.readBlocks(w.b, first, end); err != nil {
		return fmt.Errorf("read %s: %w", s.stats.File, err)
	}
	w.first, w.end = first, end
	return nil
}

// readBlocks fills the payloads of blocks [first, end) in buf: one preadv
// when the file has a descriptor, else one ReadAt per block.
func (s *session) readBlocks(buf []byte, first, end int64) error {
	off := (first - 1) * int64(s.blksize)
	want := 0
	if s.file.fd >= 0 {
		cnt := 0
		for n := first; n < end; n++ {
			l := s.blockLen(n)
			if l == 0 {
				continue
			}
			p := buf[int(n-first)*s.stride+4:]
			s.iovs[cnt].Base = &p[0]
			s.iovs[cnt].SetLen(l)
			cnt++
			want += l
		}
		if cnt == 0 {
			return nil
		}
		r, _, errno := unix.Syscall6(unix.SYS_PREADV, uintptr(s.file.fd), uintptr(unsafe.Pointer(&s.iovs[0])),
			uintptr(cnt), uintptr(off), 0, 0)
		if errno == 0 && int(r) == want {
			return nil
		}
	}
	for n := first; n < end; n++ {
		l := s.blockLen(n)
		p := buf[int(n-first)*s.stride+4:][:l]
		if _, err := s.file.ReadAt(p, (n-1)*int64(s.blksize)); err != nil && !(errors.Is(err, io.EOF) && l == 0) {
			return err
		}
	}
	return nil
}

func (s *session) sendBatch(buf []byte) error { return s.sender.Send(buf) }

func (s *session) write(b []byte) error {
	var err error
	if s.sock != nil {
		_, err = s.sock.Write(b)
		return err
	}
	if s.single {
		_, err = s.conn.WriteToUDPAddrPort(b, s.peer)
	} else {
		_, err = s.conn.Write(b)
	}
	return err
}

func (s *session) sendError(code codec.ErrorCode, msg string) {
	s.write(codec.AppendError(s.ebuf[:0], code, msg))
}

// waitAck reads datagrams until deadline (a zero deadline: only those
// already queued) and returns the absolute block
// number of the first ACK in [base, sentEnd-1], or -1 on timeout. An ACK
// for base-1 (already acted on) or for anything outside the window is
// ignored, so duplicate ACKs never trigger a second resend.
func (s *session) waitAck(ctx context.Context, base, sentEnd int64, deadline time.Time) (int64, error) {
	for {
		pkt, err := s.recv(ctx, deadline)
		if err != nil {
			return -1, err
		}
		if pkt == nil {
			return -1, nil
		}
		op, err := codec.PacketOpcode(pkt)
		if err != nil {
			s.srv.malformed.Add(1)
			continue
		}
		switch op {
		case codec.OpACK:
			blk, err := codec.ParseAck(pkt)
			if err != nil {
				s.srv.malformed.Add(1)
				continue
			}
			s.heard = true
			delta := int64(blk - uint16(base-1))
			if delta >= 1 && base-1+delta <= sentEnd-1 {
				return base - 1 + delta, nil
			}
			if base == 0 && blk == 0 {
				return 0, nil // ACK 0 for the OACK
			}
		case codec.OpERROR:
			e, err := codec.ParseError(pkt)
			if err != nil {
				return -1, fmt.Errorf("%w (malformed)", errClientError)
			}
			return -1, fmt.Errorf("%w %d: %s", errClientError, e.Code, e.Message)
		default:
			s.srv.malformed.Add(1)
		}
	}
}

// recv returns the next datagram from the client, nil at the deadline. A
// zero deadline polls without blocking.
func (s *session) recv(ctx context.Context, deadline time.Time) ([]byte, error) {
	if deadline.IsZero() {
		return s.poll()
	}
	if s.sock != nil {
		return s.recvBlocking(ctx, deadline)
	}
	if s.single {
		d := time.Until(deadline)
		if d <= 0 {
			return nil, nil
		}
		s.timer.Reset(d)
		select {
		case p := <-s.inbox:
			s.timer.Stop()
			n := copy(s.rbuf, p.bytes())
			return s.rbuf[:n], nil
		case <-s.timer.C:
			return nil, nil
		case <-ctx.Done():
			s.timer.Stop()
			return nil, ctx.Err()
		}
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	n, err := s.conn.Read(s.rbuf)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %v", errClientError, err) // e.g. port unreachable: the client is gone
	}
	return s.rbuf[:n], nil
}

// poll returns a datagram that is already queued, or nil.
func (s *session) poll() ([]byte, error) {
	if s.single {
		select {
		case p := <-s.inbox:
			n := copy(s.rbuf, p.bytes())
			return s.rbuf[:n], nil
		default:
			return nil, nil
		}
	}
	if s.sock != nil {
		n, err := s.sock.TryRecv(s.rbuf)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errClientError, err) // e.g. port unreachable: the client is gone
		}
		if n == 0 {
			return nil, nil
		}
		return s.rbuf[:n], nil
	}
	if s.pollConn == nil {
		rc, err := s.conn.SyscallConn()
		if err != nil {
			return nil, err
		}
		s.pollConn, s.pollFn = rc, s.pollRead
	}
	s.polled, s.pollErr = -1, nil
	s.conn.SetReadDeadline(time.Time{}) // an expired deadline would fail the raw read
	if err := s.pollConn.Read(s.pollFn); err != nil {
		return nil, err
	}
	if s.pollErr != nil {
		return nil, fmt.Errorf("%w: %v", errClientError, s.pollErr) // e.g. port unreachable: the client is gone
	}
	if s.polled < 0 {
		return nil, nil
	}
	return s.rbuf[:s.polled], nil
}

func (s *session) pollRead(fd uintptr) bool {
	r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)),
		unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		s.polled = int(r)
	case unix.EAGAIN, unix.EINTR:
	default:
		s.pollErr = errno
	}
	return true // never wait
}

// recvBlocking is recv on a blocking Socket: the thread sleeps in the
// kernel until the client's datagram arrives.
func (s *session) recvBlocking(ctx context.Context, deadline time.Time) ([]byte, error) {
	var n int
	err := udpbatch.WaitUntil(ctx, deadline, func(timeout time.Duration) (err error) {
		n, err = s.sock.Recv(s.rbuf, timeout)
		return err
	})
	switch {
	case err == nil:
		return s.rbuf[:n], nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, nil
	case err == ctx.Err():
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", errClientError, err) // e.g. port unreachable: the client is gone
}
