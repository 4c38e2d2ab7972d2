package udpsock_test

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/engine/internal/enginetest"
	"github.com/peerboot/peerboot/engine/udpsock"
)

// TestUDPPathDoesNotAllocate: from a datagram read with recvmmsg to its
// reply sent with sendmsg (workers) or sendmmsg (the reader serving a
// read itself), nothing allocates: real sockets in a namespace lab,
// guarded by testing.AllocsPerRun.
func TestUDPPathDoesNotAllocate(t *testing.T) {
	srv, cli := enginetest.Pair(t, "198.19.48.0/24")
	for _, tc := range []struct {
		name   string
		inline int
	}{{"workers send", 0}, {"reader batch send", 32}} {
		t.Run(tc.name, func(t *testing.T) {
			var s *udpsock.Socket
			if err := srv.Do(func() (err error) {
				s, err = udpsock.Open(udpsock.Config{Port: 4011, Interface: "eth0"})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			e := enginetest.RunWith(t, engine.Config{Socket: s, Handler: enginetest.ReplyHandler{}, Workers: 2, RingSize: 64, InlineMax: tc.inline})
			fd := enginetest.ClientSocket(t, cli, 68)
			cliMAC, _ := net.ParseMAC(cli.MAC)
			// A configured client (ciaddr set): the reply is unicast to it.
			req := enginetest.BOOTPRequest(0, cli.Addr.As4(), [4]byte{}, cliMAC)
			to := &unix.SockaddrInet4{Port: 4011, Addr: srv.Addr.As4()}
			var xid uint32
			var failure error
			exchange := enginetest.Exchange(fd, req, to, &xid, &failure)
			exchange()
			if failure != nil {
				t.Fatalf("first exchange: %v (counters %+v)", failure, e.Counters())
			}
			allocs := testing.AllocsPerRun(200, exchange)
			if failure != nil {
				t.Fatalf("exchange %d: %v (counters %+v)", xid, failure, e.Counters())
			}
			if allocs != 0 {
				t.Errorf("%v allocations per datagram from receive to reply, want 0", allocs)
			}
			if c := enginetest.WaitSent(e, uint64(xid)); c.Sent != uint64(xid) || c.SendErrors != 0 {
				t.Errorf("counters = %+v, want %d sent", c, xid)
			}
		})
	}
}
