package pxe

import (
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/engine"
)

// BenchmarkHandle measures the handler alone (decode, decide, build) on
// the requests of a BIOS and a UEFI exchange as the load generator sends
// them, rate limits on: the user-space share of the agent's cost per
// request that does not depend on the kernel.
//
//	go test -run XXX -bench Handle -benchmem ./pxe
func BenchmarkHandle(b *testing.B) {
	for _, tc := range []struct {
		name   string
		mt     dhcp.MessageType
		arch   uint16
		vendor string
		port   uint16
	}{
		{"efi64-discover", dhcp.Discover, 7, "PXEClient:Arch:00007:UNDI:003000", PortDHCPServer},
		{"efi64-request", dhcp.Request, 7, "PXEClient:Arch:00007:UNDI:003000", PortBootServer},
		{"bios-discover", dhcp.Discover, 0, "PXEClient:Arch:00000:UNDI:002001", PortDHCPServer},
		{"bios-request", dhcp.Request, 0, "PXEClient:Arch:00000:UNDI:002001", PortBootServer},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := newTestServer(b, func(c *Config, _ *StaticPolicy) { c.PerMACRate, c.GlobalRate = 1e12, 1e12 })
			req := discoverTo(synthRequest(b, tc.mt, macA, tc.arch, tc.vendor, "", [4]byte{}, nil), tc.port)
			rb := engine.NewReplyBuffer()
			now := engine.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req.Received = now + int64(i)
				rb.Payload = rb.Payload[:0]
				if !s.Handle(req, rb) {
					b.Fatal("not answered")
				}
			}
		})
	}
}
