package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

// Server is a TFTP server. Create it with New and run it with Serve or
// ListenAndServe.
type Server struct {
	cfg   Config
	log   *slog.Logger
	files fileCache

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session
	wg       sync.WaitGroup

	requests, malformed, refused, busy, completed, bytesSent, retransmits atomic.Uint64
	active                                                                atomic.Int64

	blocking udpbatch.Slots // sessions on a blocking Socket
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{cfg: c, log: c.Logger, files: fileCache{m: map[string]*sharedFile{}, linger: c.FileLinger},
		sessions: map[netip.AddrPort]*session{}}, nil
}

// Counters returns the server-wide counters.
func (s *Server) Counters() Counters {
	return Counters{
		Requests: s.requests.Load(), Malformed: s.malformed.Load(), Refused: s.refused.Load(),
		Busy: s.busy.Load(), Active: s.active.Load(), Completed: s.completed.Load(),
		BytesSent: s.bytesSent.Load(), Retransmits: s.retransmits.Load(),
	}
}

// CloseRemovedFiles closes the files kept open after their last transfer
// (Config.FileLinger) that have been removed from disk since, so the disk
// space they hold is freed at once; a file removed during a transfer is
// closed when its last transfer ends. Call it after pruning the files a
// Source serves. It returns how many files it closed.
func (s *Server) CloseRemovedFiles() int {
	return s.files.closeUnlinked()
}

// ListenAndServe listens on addr ("host:port", UDP) and serves until ctx
// is canceled.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	conn, err := Listen(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return s.Serve(ctx, conn)
}

// Listen opens the UDP socket a server reads requests from.
func Listen(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp listen %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp listen %s: %w", addr, err)
	}
	return conn, nil
}

// Serve reads requests from conn until ctx is canceled, then waits for the
// running transfers to stop. It does not close conn.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	enablePktinfo(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer s.files.closeIdle()
	defer s.wg.Wait()
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	// One Request for the loop: ParseRequest's error points into it, so a
	// Request per packet would be a heap allocation per malformed packet.
	req := new(codec.Request)
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp serve: %w", err)
		}
		s.handle(ctx, conn, buf[:n], oob[:oobn], from, req)
	}
}

// handle serves one packet read by Serve. req is scratch space owned by the
// caller; nothing keeps it after handle returns.
func (s *Server) handle(ctx context.Context, conn *net.UDPConn, pkt, oob []byte, from netip.AddrPort, req *codec.Request) {
	op, err := codec.PacketOpcode(pkt)
	if err != nil {
		s.malformed.Add(1)
		return
	}
	if op != codec.OpRRQ && op != codec.OpWRQ {
		if s.cfg.SinglePort {
			s.mu.Lock()
			sess := s.sessions[from]
			s.mu.Unlock()
			if sess != nil {
				sess.deliver(pkt)
				return
			}
		}
		s.malformed.Add(1) // not a request and no transfer for it
		return
	}
	s.requests.Add(1)
	if err := codec.ParseRequest(pkt, req); err != nil {
		if errors.Is(err, codec.ErrBadOptionValue) {
			s.refuse(conn, from, codec.ErrCodeOptionNegotiation, "bad option value", "", err)
			return
		}
		s.malformed.Add(1)
		// Checked first: the arguments would be boxed (allocated) even
		// when the level is off, and a flood is made of these.
		if s.log.Enabled(context.Background(), slog.LevelInfo) {
			s.log.Info("tftp: malformed request dropped", "client", from, "err", err)
		}
		return
	}
	raw := string(req.Filename)
	if req.Opcode == codec.OpWRQ && s.cfg.Uploads == nil {
		s.refuse(conn, from, codec.ErrCodeAccessViolation, "write requests are not allowed", raw, nil)
		return
	}
	if req.Mode != codec.ModeOctet {
		s.refuse(conn, from, codec.ErrCodeIllegalOperation, "only octet mode is supported", raw, nil)
		return
	}
	s.mu.Lock()
	_, dup := s.sessions[from]
	s.mu.Unlock()
	if dup {
		return // the client repeated its request; the running session answers it
	}
	if s.active.Load() >= int64(s.cfg.MaxSessions) {
		s.busy.Add(1)
		s.refuse(conn, from, codec.ErrCodeNotDefined, "server busy", raw, nil)
		return
	}
	name, err := CleanName(raw)
	if err != nil {
		s.refuseOpen(conn, from, raw, err)
		return
	}
	var f *sharedFile
	var up NewFile
	if req.Opcode == codec.OpWRQ {
		if req.Has(codec.OptTsize) && req.Tsize > s.cfg.MaxUploadSize {
			s.refuse(conn, from, codec.ErrCodeDiskFull, "file too large", raw,
				fmt.Errorf("tsize %d exceeds the upload limit %d", req.Tsize, s.cfg.MaxUploadSize))
			return
		}
		up, err = s.cfg.Uploads.Create(name)
	} else {
		f, err = s.files.open(s.cfg.Source, name)
	}
	if err != nil {
		s.refuseOpen(conn, from, raw, err)
		return
	}
	release := func() {
		if f != nil {
			s.files.release(f)
		}
	}
	sess, err := s.newSession(ctx, conn, from, localAddr(conn, oob), name, f, up, &req.Options)
	if err != nil {
		release()
		if up != nil {
			up.Abort()
		}
		s.refuse(conn, from, codec.ErrCodeNotDefined, "server error", raw, err)
		return
	}
	if sess == nil {
		release()
		if up != nil {
			up.Abort()
		}
		return // refused during negotiation
	}
	s.mu.Lock()
	s.sessions[from] = sess
	s.mu.Unlock()
	s.active.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sess.run(ctx)
		s.mu.Lock()
		delete(s.sessions, from)
		s.mu.Unlock()
		s.active.Add(-1)
		release()
	}()
}

func (s *Server) refuseOpen(conn *net.UDPConn, to netip.AddrPort, raw string, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		s.refuse(conn, to, codec.ErrCodeFileNotFound, "file not found", raw, err)
	case errors.Is(err, ErrExists):
		s.refuse(conn, to, codec.ErrCodeFileExists, "file already exists", raw, err)
	default:
		s.refuse(conn, to, codec.ErrCodeAccessViolation, "access violation", raw, err)
	}
}

func (s *Server) refuse(conn *net.UDPConn, to netip.AddrPort, code codec.ErrorCode, msg, file string, err error) {
	s.refused.Add(1)
	var b [128]byte
	conn.WriteToUDPAddrPort(codec.AppendError(b[:0], code, msg), to)
	s.log.Info("tftp: request refused", "client", to, "file", file, "code", int(code), "reason", msg, "err", err)
}

// enablePktinfo asks the kernel for each request's destination address, so
// per-transfer sockets answer from the address the client talked to.
func enablePktinfo(conn *net.UDPConn) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	})
}

// localAddr returns the address a request was sent to, from its packet
// info, or the listening address.
func localAddr(conn *net.UDPConn, oob []byte) netip.Addr {
	if msgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
				var a [4]byte
				copy(a[:], m.Data[4:8]) // ipi_spec_dst
				return netip.AddrFrom4(a)
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 16:
				return netip.AddrFrom16([16]byte(m.Data[:16]))
			}
		}
	}
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(la.IP); ok && !a.IsUnspecified() {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}
