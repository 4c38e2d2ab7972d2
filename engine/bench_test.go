package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/peerboot/peerboot/codec/frame"
)

// replaySocket hands out copies of one frame until n have been read, then
// reports ErrClosed; Send only counts.
// With tokens set, at most cap(tokens) packets are in flight: a read takes
// one token per packet (waiting for the first) and the handler gives it
// back, so the reader runs no faster than the workers and nothing is
// dropped.
type replaySocket struct {
	frame  []byte
	left   int
	sent   atomic.Uint64
	tokens chan struct{}

	queued, flushes int // batch sends, by the reader only
}

func (s *replaySocket) ReadBatch(pkts []*Packet) (int, error) {
	if s.left == 0 {
		return 0, ErrClosed
	}
	n := min(len(pkts), s.left)
	if s.tokens != nil {
		<-s.tokens
		k := 1
		for k < n {
			select {
			case <-s.tokens:
				k++
				continue
			default:
			}
			break
		}
		n = k
	}
	for _, p := range pkts[:n] {
		k := copy(p.Buffer(), s.frame)
		p.Frame = p.Buffer()[:k]
	}
	s.left -= n
	return n, nil
}

func (s *replaySocket) Send(*Packet, *ReplyBuffer, Destination) error {
	s.sent.Add(1)
	return nil
}

func (s *replaySocket) Close() error { return nil }

// Queue and Flush make replaySocket a BatchSender: they only count.
func (s *replaySocket) Queue(*Packet, *ReplyBuffer, Destination) error {
	s.queued++
	return nil
}

func (s *replaySocket) Flush() (int, error) {
	n := s.queued
	s.queued = 0
	s.flushes++
	return n, nil
}

func benchFrame(b *testing.B) []byte {
	msg := make([]byte, 300)
	msg[0], msg[1], msg[2] = 1, 1, 6
	copy(msg[236:], []byte{99, 130, 83, 99, 255})
	h := frame.Header{
		Eth: frame.Ethernet{Dst: frame.Broadcast, Src: frame.MAC{2, 0, 0, 0, 0, 1}},
		IP:  frame.IPv4{TTL: 64, Dst: [4]byte{255, 255, 255, 255}},
		UDP: frame.UDP{SrcPort: 68, DstPort: 67},
	}
	f, err := frame.Append(nil, &h, msg)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

var (
	noop = HandlerFunc(func(*Packet, *ReplyBuffer) bool { return false })
	echo = HandlerFunc(func(req *Packet, reply *ReplyBuffer) bool {
		reply.Payload = append(reply.Payload, req.Payload...)
		reply.Payload[0] = 2
		return true
	})
)

// BenchmarkDispatcher measures packets per second from socket read to
// handler (and reply addressing for the echo handler) through the ring
// and the worker pool, against the same work done inline on one goroutine
// without a ring.
func BenchmarkDispatcher(b *testing.B) {
	f := benchFrame(b)
	for _, h := range []struct {
		name string
		h    Handler
	}{{"noop", noop}, {"echo", echo}} {
		b.Run(fmt.Sprintf("handler=%s/inline", h.name), func(b *testing.B) {
			sock := &replaySocket{frame: f, left: b.N}
			e, _ := New(Config{Socket: sock, Handler: h.h, Workers: 1, RingSize: 1})
			p, reply := &e.pool[0], NewReplyBuffer()
			pkts := []*Packet{p}
			b.ReportAllocs()
			b.ResetTimer()
			for {
				if _, err := sock.ReadBatch(pkts); err != nil {
					break
				}
				e.serve(p, reply)
				p.reset()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
		})
		b.Run(fmt.Sprintf("handler=%s/reader-inline-batch=32", h.name), func(b *testing.B) {
			// What the agent runs: the reader serves each read of up to
			// 32 packets itself and sends the replies with one Flush.
			sock := &replaySocket{frame: f, left: b.N}
			e, _ := New(Config{Socket: sock, Handler: h.h, Workers: 1, Batch: 32, InlineMax: 32})
			b.ReportAllocs()
			b.ResetTimer()
			_ = e.Run(context.Background())
			b.StopTimer()
			if c := e.Counters(); c.Received != uint64(b.N) || c.DroppedRingFull != 0 {
				b.Fatalf("counters %+v for %d packets", c, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
		})
		b.Run(fmt.Sprintf("handler=%s/overload-drop", h.name), func(b *testing.B) {
			// The reader outruns one worker: most packets are dropped
			// at the ring, which must stay cheap and allocation-free.
			sock := &replaySocket{frame: f, left: b.N}
			e, _ := New(Config{Socket: sock, Handler: h.h, Workers: 1, RingSize: 1024, Batch: 32})
			b.ReportAllocs()
			b.ResetTimer()
			_ = e.Run(context.Background())
			b.StopTimer()
			c := e.Counters()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "read/s")
			b.ReportMetric(float64(c.DroppedRingFull)/float64(b.N)*100, "%dropped")
		})
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("handler=%s/workers=%d", h.name, workers), func(b *testing.B) {
				const window = 512
				sock := &replaySocket{frame: f, left: b.N, tokens: make(chan struct{}, window)}
				for range window {
					sock.tokens <- struct{}{}
				}
				inner := h.h
				paced := HandlerFunc(func(req *Packet, reply *ReplyBuffer) bool {
					send := inner.Handle(req, reply)
					sock.tokens <- struct{}{}
					return send
				})
				e, _ := New(Config{Socket: sock, Handler: paced, Workers: workers, RingSize: 1024, Batch: 32})
				b.ReportAllocs()
				b.ResetTimer()
				_ = e.Run(context.Background())
				b.StopTimer()
				c := e.Counters()
				if c.Received != uint64(b.N) {
					b.Fatalf("received %d of %d", c.Received, b.N)
				}
				if c.DroppedRingFull != 0 {
					b.Fatalf("%d packets dropped", c.DroppedRingFull)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
			})
		}
	}
}
