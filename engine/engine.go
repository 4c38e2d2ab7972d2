package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Handler turns one request into at most one reply. It is called from
// several workers at once, so it must be safe for concurrent use. It must
// not keep req or reply after it returns. It writes the reply into
// reply.Payload (capacity MaxPayload, never reallocate it to stay at zero
// allocations) and returns true to send it, false to send nothing.
type Handler interface {
	Handle(req *Packet, reply *ReplyBuffer) (send bool)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *Packet, reply *ReplyBuffer) bool

// Handle calls f.
func (f HandlerFunc) Handle(req *Packet, reply *ReplyBuffer) bool { return f(req, reply) }

// Socket is what the engine reads requests from and sends replies through:
// engine/rawsock (AF_PACKET with a kernel filter), engine/udpsock (a UDP
// socket) or an in-memory socket in tests.
type Socket interface {
	// ReadBatch blocks until at least one packet is available, then reads
	// up to len(pkts) packets into the given buffers (Packet.Buffer) and
	// returns how many it filled. Only one goroutine calls it. A raw socket
	// sets Frame; a UDP socket sets Payload and the addresses instead. It
	// returns an error (ErrClosed once closed) when nothing more will come.
	ReadBatch(pkts []*Packet) (int, error)
	// Send transmits reply to dst on behalf of req. It is called from
	// several workers at once. reply.Frame gives room for headers.
	Send(req *Packet, reply *ReplyBuffer, dst Destination) error
	// Close stops the socket; a blocked ReadBatch returns.
	Close() error
}

// KernelFiltered is implemented by sockets whose kernel filter counts what
// it dropped.
type KernelFiltered interface {
	Filtered() uint64
}

// KernelDropper is implemented by sockets whose kernel queue (a receive
// ring or buffer) counts what it dropped because the reader fell behind.
type KernelDropper interface {
	KernelDropped() uint64
}

// BatchSender is implemented by sockets that can send several replies
// with one system call. Only the engine's reader goroutine calls it.
type BatchSender interface {
	// Queue addresses reply to dst and adds it to the pending batch. The
	// reply buffer must stay untouched until Flush returns.
	Queue(req *Packet, reply *ReplyBuffer, dst Destination) error
	// Flush sends every queued reply and reports how many were sent.
	Flush() (int, error)
}

// ErrClosed is returned by sockets after Close.
var ErrClosed = errors.New("engine: socket closed")

// Config configures an Engine. Zero values get defaults.
type Config struct {
	Socket  Socket  // required
	Handler Handler // required
	// Workers is the number of goroutines running the handler (default 2).
	Workers int
	// RingSize is how many received packets may wait for a worker; beyond
	// that, packets are dropped and counted (default 1024).
	RingSize int
	// Batch is how many packets one read may return (default 32).
	Batch int
	// InlineMax, when positive, lets the reader serve up to InlineMax
	// packets of every read itself and queue only the rest on the ring
	// for the workers: a quiet or moderately busy socket then costs no
	// hand-off between goroutines, and when the socket is a BatchSender
	// the replies to one read leave with one system call. 0 sends every
	// packet through the ring.
	InlineMax int
	Logger    *slog.Logger
}

// Counters is a snapshot of the engine's counters, for metrics.
type Counters struct {
	Received        uint64 // packets read from the socket
	Reads           uint64 // reads that returned packets (Received / Reads: packets per wake-up)
	Filtered        uint64 // packets the kernel filter dropped (raw socket with eBPF only)
	DroppedRingFull uint64 // packets dropped because the ring was full
	DroppedKernel   uint64 // packets the socket's kernel queue dropped because the reader fell behind
	Malformed       uint64 // frames that are not a whole Ethernet/IPv4/UDP packet
	Ignored         uint64 // requests the handler did not answer
	Sent            uint64 // replies sent
	SendErrors      uint64 // replies that could not be addressed or sent
}

// Engine reads packets from a socket into preallocated buffers, queues
// them on a fixed ring and runs the handler on a pool of workers, each with
// its own preallocated reply buffer.
type Engine struct {
	sock    Socket
	handler Handler
	log     *slog.Logger
	workers int
	batch   int
	inline  int
	batcher BatchSender // nil when the socket sends one reply at a time
	replies []*ReplyBuffer
	queued  int // replies waiting in the socket's batch

	pool []Packet     // every packet buffer, allocated once
	free chan *Packet // buffers nobody uses
	ring chan *Packet // received packets waiting for a worker
	drop Packet       // read target when no buffer is free (counted as dropped)
	c    counters
}

type counters struct {
	received, reads, ringFull, malformed, ignored, sent, sendErrors atomic.Uint64
}

// New allocates every buffer the engine will ever use.
func New(cfg Config) (*Engine, error) {
	if cfg.Socket == nil || cfg.Handler == nil {
		return nil, errors.New("engine: Socket and Handler are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.RingSize <= 0 {
		cfg.RingSize = 1024
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Enough buffers for a full ring, one being handled per worker and
	// one batch being read: the reader finds a free buffer whenever the
	// ring has room.
	n := cfg.RingSize + cfg.Workers + cfg.Batch
	e := &Engine{
		sock:    cfg.Socket,
		handler: cfg.Handler,
		log:     cfg.Logger,
		workers: cfg.Workers,
		batch:   cfg.Batch,
		inline:  min(cfg.InlineMax, cfg.Batch),
		pool:    make([]Packet, n),
		free:    make(chan *Packet, n),
		ring:    make(chan *Packet, cfg.RingSize),
	}
	for i := range e.pool {
		e.free <- &e.pool[i]
	}
	if e.inline > 0 {
		e.batcher, _ = cfg.Socket.(BatchSender)
		e.replies = make([]*ReplyBuffer, e.inline)
		for i := range e.replies {
			e.replies[i] = NewReplyBuffer()
			e.replies[i].inline = true
		}
	}
	return e, nil
}

// Counters returns the current counters.
func (e *Engine) Counters() Counters {
	c := Counters{
		Received:        e.c.received.Load(),
		Reads:           e.c.reads.Load(),
		DroppedRingFull: e.c.ringFull.Load(),
		Malformed:       e.c.malformed.Load(),
		Ignored:         e.c.ignored.Load(),
		Sent:            e.c.sent.Load(),
		SendErrors:      e.c.sendErrors.Load(),
	}
	if kf, ok := e.sock.(KernelFiltered); ok {
		c.Filtered = kf.Filtered()
	}
	if kd, ok := e.sock.(KernelDropper); ok {
		c.DroppedKernel = kd.KernelDropped()
	}
	return c
}

// Run serves until ctx is cancelled or the socket fails. It closes the
// socket when it returns. Run may be called once.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work()
		}()
	}
	stop := context.AfterFunc(ctx, func() { _ = e.sock.Close() })
	defer stop()
	err := e.read()
	close(e.ring)
	wg.Wait()
	_ = e.sock.Close()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("engine: reading: %w", err)
}

// read is the reader loop: it never blocks on the workers and never
// allocates.
func (e *Engine) read() error {
	batch := make([]*Packet, e.batch)
	dropBatch := []*Packet{&e.drop}
	have := 0 // batch[:have] hold free buffers
	for {
		for have < len(batch) {
			select {
			case p := <-e.free:
				batch[have] = p
				have++
				continue
			default:
			}
			break
		}
		dropAll := have == 0
		bufs := batch[:have]
		if dropAll {
			// Every buffer is queued or in a worker: read into the
			// spare so the socket drains, and count the drop.
			bufs = dropBatch
		}
		n, err := e.sock.ReadBatch(bufs)
		if err != nil {
			for _, p := range batch[:have] {
				e.free <- p
			}
			return err
		}
		e.c.received.Add(uint64(n))
		e.c.reads.Add(1)
		if dropAll {
			e.c.ringFull.Add(uint64(n))
			continue
		}
		now := Now()
		for _, p := range batch[:n] {
			p.Received = now
		}
		inline := min(n, e.inline)
		e.serveInline(batch[:inline])
		for i := inline; i < n; i++ {
			select {
			case e.ring <- batch[i]:
			default:
				e.c.ringFull.Add(1)
				e.free <- batch[i]
			}
		}
		// The buffers served inline are free again: keep them, and move
		// the unused ones behind them.
		have = inline + copy(batch[inline:], batch[n:have])
	}
}

// serveInline serves pkts on the reader goroutine, each with its own reply
// buffer so a BatchSender can send all the replies with one Flush. The
// packets stay owned by the reader.
func (e *Engine) serveInline(pkts []*Packet) {
	if len(pkts) == 0 {
		return
	}
	for i, p := range pkts {
		e.serve(p, e.replies[i])
	}
	if e.queued > 0 {
		sent, err := e.batcher.Flush()
		e.c.sent.Add(uint64(sent))
		if failed := e.queued - sent; failed > 0 {
			e.c.sendErrors.Add(uint64(failed))
			e.log.Debug("engine: batch send failed", "replies", e.queued, "sent", sent, "err", err)
		}
		e.queued = 0
	}
	for _, p := range pkts {
		p.reset()
	}
}

// work is one worker: decode, handle, address, send.
func (e *Engine) work() {
	reply := NewReplyBuffer()
	for p := range e.ring {
		e.serve(p, reply)
		p.reset()
		e.free <- p
	}
}

// isInlineReply reports whether reply is one of the reader's own buffers
// (whose replies go out in a batch) rather than a worker's.
func (e *Engine) isInlineReply(reply *ReplyBuffer) bool {
	return len(e.replies) > 0 && reply.inline
}

func (e *Engine) serve(p *Packet, reply *ReplyBuffer) {
	if p.Frame != nil {
		if !decodeFrame(p) {
			e.c.malformed.Add(1)
			return
		}
	}
	reply.reset()
	if !e.handler.Handle(p, reply) {
		e.c.ignored.Add(1)
		return
	}
	a, err := AddressingFromBOOTP(reply.Payload)
	if err != nil {
		e.c.sendErrors.Add(1)
		return
	}
	dst := Route(a, p)
	if reply.DstPort != 0 {
		dst.Port = reply.DstPort
	}
	if e.batcher != nil && e.isInlineReply(reply) {
		if err := e.batcher.Queue(p, reply, dst); err != nil {
			e.c.sendErrors.Add(1)
			e.log.Debug("engine: queueing reply failed", "dst", dst.IP, "port", dst.Port, "err", err)
			return
		}
		e.queued++
		return
	}
	if err := e.sock.Send(p, reply, dst); err != nil {
		e.c.sendErrors.Add(1)
		e.log.Debug("engine: send failed", "dst", dst.IP, "port", dst.Port, "err", err)
		return
	}
	e.c.sent.Add(1)
}
