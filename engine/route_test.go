package engine_test

import (
	"net/netip"
	"testing"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
)

func TestRoute(t *testing.T) {
	relayMAC := frame.MAC{0x02, 0, 0, 0, 0, 0x01}
	ci := [4]byte{198, 18, 5, 20}
	yi := [4]byte{198, 18, 5, 30}
	gi := [4]byte{198, 18, 6, 1}
	bcast := netip.MustParseAddr("255.255.255.255")
	tests := []struct {
		name string
		a    engine.Addressing
		req  engine.Packet
		want engine.Destination
	}{
		{
			name: "no ciaddr, no yiaddr (ProxyDHCP offer): broadcast",
			a:    engine.Addressing{CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 68, DstPort: 67},
			want: engine.Destination{Kind: engine.RouteBroadcast, MAC: bcastMAC, IP: bcast, Port: 68, SrcPort: 67},
		},
		{
			name: "broadcast flag wins over yiaddr",
			a:    engine.Addressing{Broadcast: true, YIAddr: yi, CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 68, DstPort: 67},
			want: engine.Destination{Kind: engine.RouteBroadcast, MAC: bcastMAC, IP: bcast, Port: 68, SrcPort: 67},
		},
		{
			name: "yiaddr, no flag: unicast to chaddr/yiaddr",
			a:    engine.Addressing{YIAddr: yi, CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 68, DstPort: 67},
			want: engine.Destination{Kind: engine.RouteYIAddr, MAC: clientMAC, IP: netip.AddrFrom4(yi), Port: 68, SrcPort: 67},
		},
		{
			name: "ciaddr set: unicast to ciaddr, port the client used (OVMF 4011)",
			a:    engine.Addressing{CIAddr: ci, CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 4011, DstPort: 4011},
			want: engine.Destination{Kind: engine.RouteCIAddr, MAC: clientMAC, IP: netip.AddrFrom4(ci), Port: 4011, SrcPort: 4011},
		},
		{
			name: "ciaddr set beats the broadcast flag",
			a:    engine.Addressing{CIAddr: ci, Broadcast: true, CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 68, DstPort: 4011},
			want: engine.Destination{Kind: engine.RouteCIAddr, MAC: clientMAC, IP: netip.AddrFrom4(ci), Port: 68, SrcPort: 4011},
		},
		{
			name: "giaddr set: to the relay on port 67 via the hop it came from",
			a:    engine.Addressing{GIAddr: gi, CIAddr: ci, Broadcast: true, CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: relayMAC, SrcPort: 67, DstPort: 67},
			want: engine.Destination{Kind: engine.RouteRelay, MAC: relayMAC, IP: netip.AddrFrom4(gi), Port: 67, SrcPort: 67},
		},
		{
			name: "snooping port 2067: answer from 2067 to the client's 2068",
			a:    engine.Addressing{CHAddr: clientMAC},
			req:  engine.Packet{SrcMAC: clientMAC, SrcPort: 2068, DstPort: 2067},
			want: engine.Destination{Kind: engine.RouteBroadcast, MAC: bcastMAC, IP: bcast, Port: 2068, SrcPort: 2067},
		},
		{
			name: "unknown ports default to 67 -> 68",
			a:    engine.Addressing{},
			req:  engine.Packet{},
			want: engine.Destination{Kind: engine.RouteBroadcast, MAC: bcastMAC, IP: bcast, Port: 68, SrcPort: 67},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := engine.Route(tt.a, &tt.req); got != tt.want {
				t.Errorf("Route = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestAddressingFromBOOTP(t *testing.T) {
	ci, yi, gi := [4]byte{198, 18, 1, 2}, [4]byte{198, 18, 1, 3}, [4]byte{198, 18, 1, 4}
	got, err := engine.AddressingFromBOOTP(bootp(2, 1, true, ci, yi, gi, clientMAC))
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Addressing{CIAddr: ci, YIAddr: yi, GIAddr: gi, Broadcast: true, CHAddr: clientMAC}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := engine.AddressingFromBOOTP(make([]byte, 43)); err == nil {
		t.Error("43-byte message accepted")
	}
}
