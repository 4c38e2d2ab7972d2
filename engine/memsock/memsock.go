package memsock

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/peerboot/peerboot/engine"
)

// Reply is one reply the engine sent.
type Reply struct {
	Dst     engine.Destination
	Payload []byte // valid until Capacity more replies have been sent
	// ReqSrcPort and ReqDstPort are the ports of the request answered.
	ReqSrcPort, ReqDstPort uint16
}

type inbound struct {
	slot     int
	n        int
	datagram bool
	src, dst netip.AddrPort
	ifIndex  int
}

// Socket is an in-memory engine.Socket.
type Socket struct {
	in      chan inbound
	inSlots [][engine.MaxFrame]byte
	inNext  int
	inMu    sync.Mutex

	out      chan Reply
	outSlots [][engine.MaxFrame]byte
	outNext  int
	outMu    sync.Mutex

	// batch send (Queue, Flush): replies queued since the last Flush
	batch   []queued
	flushes atomic.Int64
	batched atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a socket that holds up to capacity injected packets not yet
// read and capacity sent replies not yet taken from Replies.
func New(capacity int) *Socket {
	return &Socket{
		in:       make(chan inbound, capacity),
		inSlots:  make([][engine.MaxFrame]byte, capacity+1),
		out:      make(chan Reply, capacity),
		outSlots: make([][engine.MaxFrame]byte, capacity+1),
		batch:    make([]queued, 0, 256),
		closed:   make(chan struct{}),
	}
}

// InjectFrame queues an Ethernet frame as if a raw socket had received it.
// It reports false when the queue is full.
func (s *Socket) InjectFrame(frame []byte) bool {
	return s.inject(inbound{}, frame)
}

// InjectDatagram queues a UDP payload as if a UDP socket had received it
// from src on dst.
func (s *Socket) InjectDatagram(payload []byte, src, dst netip.AddrPort, ifIndex int) bool {
	return s.inject(inbound{datagram: true, src: src, dst: dst, ifIndex: ifIndex}, payload)
}

func (s *Socket) inject(m inbound, b []byte) bool {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if len(s.in) == cap(s.in) {
		return false
	}
	m.slot = s.inNext
	s.inNext = (s.inNext + 1) % len(s.inSlots)
	m.n = copy(s.inSlots[m.slot][:], b)
	s.in <- m
	return true
}

// Replies delivers every reply the engine sends.
func (s *Socket) Replies() <-chan Reply { return s.out }

// ReadBatch implements engine.Socket.
func (s *Socket) ReadBatch(pkts []*engine.Packet) (int, error) {
	var m inbound
	select {
	case m = <-s.in:
	case <-s.closed:
		return 0, engine.ErrClosed
	}
	n := 0
	for {
		s.fill(pkts[n], m)
		n++
		if n == len(pkts) {
			return n, nil
		}
		select {
		case m = <-s.in:
		default:
			return n, nil
		}
	}
}

func (s *Socket) fill(p *engine.Packet, m inbound) {
	buf := p.Buffer()
	s.inMu.Lock()
	k := copy(buf, s.inSlots[m.slot][:m.n])
	s.inMu.Unlock()
	if !m.datagram {
		p.Frame = buf[:k]
		return
	}
	p.Payload = buf[:k]
	p.SrcIP, p.SrcPort = m.src.Addr(), m.src.Port()
	p.DstIP, p.DstPort = m.dst.Addr(), m.dst.Port()
	p.IfIndex = m.ifIndex
}

// Send implements engine.Socket: it copies the reply and hands it to
// Replies, or fails when the test is not taking them.
func (s *Socket) Send(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	select {
	case <-s.closed:
		return engine.ErrClosed
	default:
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if len(s.out) == cap(s.out) {
		return errFull
	}
	slot := &s.outSlots[s.outNext]
	s.outNext = (s.outNext + 1) % len(s.outSlots)
	n := copy(slot[:], reply.Payload)
	s.out <- Reply{Dst: dst, Payload: slot[:n], ReqSrcPort: req.SrcPort, ReqDstPort: req.DstPort}
	return nil
}

type queued struct {
	req   engine.Packet
	reply *engine.ReplyBuffer
	dst   engine.Destination
}

// Queue implements engine.BatchSender: the reply is delivered to Replies
// by the next Flush.
func (s *Socket) Queue(req *engine.Packet, reply *engine.ReplyBuffer, dst engine.Destination) error {
	if len(s.batch) == cap(s.batch) {
		return errBatchFull
	}
	s.batch = append(s.batch, queued{reply: reply, dst: dst})
	q := &s.batch[len(s.batch)-1]
	q.req.SrcPort, q.req.DstPort = req.SrcPort, req.DstPort
	return nil
}

// Flush implements engine.BatchSender.
func (s *Socket) Flush() (int, error) {
	defer func() { s.batch = s.batch[:0] }()
	s.flushes.Add(1)
	for i := range s.batch {
		q := &s.batch[i]
		if err := s.Send(&q.req, q.reply, q.dst); err != nil {
			return i, err
		}
		s.batched.Add(1)
	}
	return len(s.batch), nil
}

// Flushes is how many times Flush was called.
func (s *Socket) Flushes() int64 { return s.flushes.Load() }

// Batched is how many replies were sent by Flush (the rest by Send).
func (s *Socket) Batched() int64 { return s.batched.Load() }

type fullError struct{}

func (fullError) Error() string { return "memsock: reply queue full" }

var errFull error = fullError{}

type batchFullError struct{}

func (batchFullError) Error() string { return "memsock: send batch full" }

var errBatchFull error = batchFullError{}

// Close implements engine.Socket.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}
