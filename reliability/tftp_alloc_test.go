package reliability

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp"
)

// TestMalformedTFTPRequestAllocatesNothing guards the agent's memory under
// hostile traffic (docs/RELIABILITY.md): a malformed read request is
// dropped and counted without a heap allocation, in the codec and in the
// server, so a flood of them leaves no garbage behind.
func TestMalformedTFTPRequestAllocatesNothing(t *testing.T) {
	pkt := []byte{0, 1, 'b', 'o', 'o', 't'} // RRQ without terminators
	badOpcode := []byte{0, 9, 'x', 0}       // no such opcode
	var req codec.Request
	if n := testing.AllocsPerRun(1000, func() { codec.ParseRequest(pkt, &req) }); n != 0 {
		t.Errorf("codec/tftp.ParseRequest of a malformed request: %.0f allocations, want 0", n)
	}

	srv, err := tftp.New(tftp.Config{Source: emptySource{}, Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, conn)
	c, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 20000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	base := srv.Counters().Malformed
	for sent := 0; sent < n; {
		for k := 0; k < 50; k++ {
			if k%2 == 0 {
				c.Write(pkt)
			} else {
				c.Write(badOpcode)
			}
			sent++
		}
		// Let the server drain its socket before the next burst (a lost
		// datagram is simply not counted).
		for deadline := time.Now().Add(20 * time.Millisecond); srv.Counters().Malformed-base < uint64(sent) && time.Now().Before(deadline); {
			runtime.Gosched()
		}
	}
	if got := srv.Counters().Malformed - base; got < n/2 {
		t.Fatalf("only %d of %d malformed requests reached the server", got, n)
	}
	runtime.ReadMemStats(&after)
	got := srv.Counters().Malformed - base
	per := float64(after.Mallocs-before.Mallocs) / float64(got)
	t.Logf("%d malformed requests counted; %.2f heap allocations per request in this process", got, per)
	if per > 0.1 {
		t.Errorf("%.2f allocations per malformed request, want none", per)
	}
}

type emptySource struct{}

func (emptySource) Open(name string) (tftp.File, error) { return nil, tftp.ErrNotFound }
