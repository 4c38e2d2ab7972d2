package pxe

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
	"github.com/peerboot/peerboot/engine"
	"github.com/peerboot/peerboot/pxe"
)

var serverIP = netip.MustParseAddr("198.18.7.1")

// newServer returns a server with every architecture in its boot table,
// an iPXE script and no rate limits, so every well-formed PXE request is
// answered.
func newServer(f *testing.F, snooping bool) *pxe.Server {
	pol := &pxe.StaticPolicy{}
	for _, name := range pxe.ClassNames() {
		file := name + ".bin"
		if c, err := pxe.ParseClass(name); err == nil && c.HTTP() {
			file = "http://198.18.7.1/" + file
		}
		if err := pol.Table.Parse(name + "=" + file); err != nil {
			f.Fatal(err)
		}
	}
	pol.Table.IPXEScript = "http://198.18.7.1/boot.ipxe"
	s, err := pxe.New(context.Background(), pxe.Config{ServerIP: serverIP, Decider: pxe.NewSticky(pol, 0),
		Snooping: snooping, PerMACRate: -1, GlobalRate: -1})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// addSeeds adds the captured client requests; each file name ends in
// -toPORT-N.bin, PORT being where the firmware sent it.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob("testdata/seeds/*.bin")
	if err != nil || len(files) < 6 {
		f.Fatalf("seed corpus missing: %d files, %v", len(files), err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		_, rest, _ := strings.Cut(filepath.Base(name), "-to")
		port, err := strconv.Atoi(strings.Split(rest, "-")[0])
		if err != nil {
			f.Fatalf("%s: no port in the name", name)
		}
		f.Add(b, uint16(port), false)
		f.Add(b, uint16(pxe.PortSnoopServer), true)
	}
}

// FuzzHandle feeds arbitrary requests to the server on a port (67, 4011,
// or 2067 in snooping mode) and checks that it never panics and that every
// reply it writes is a well-formed DHCP OFFER or ACK for the request.
func FuzzHandle(f *testing.F) {
	addSeeds(f)
	servers := map[bool]*pxe.Server{false: newServer(f, false), true: newServer(f, true)}
	f.Fuzz(func(t *testing.T, msg []byte, port uint16, snooping bool) {
		srv := servers[snooping]
		req := &engine.Packet{
			Payload: msg,
			SrcIP:   netip.MustParseAddr("198.18.7.20"), DstIP: serverIP,
			SrcPort: pxe.PortDHCPClient, DstPort: port,
		}
		reply := engine.NewReplyBuffer()
		if !srv.Handle(req, reply) {
			if len(reply.Payload) > engine.MaxPayload {
				t.Fatalf("dropped request left a %d-byte reply", len(reply.Payload))
			}
			return
		}
		checkReply(t, msg, port, snooping, reply)
	})
}

func checkReply(t *testing.T, msg []byte, port uint16, snooping bool, reply *engine.ReplyBuffer) {
	if len(reply.Payload) > engine.MaxPayload {
		t.Fatalf("reply of %d bytes exceeds %d", len(reply.Payload), engine.MaxPayload)
	}
	var req, rep dhcp.Packet
	if err := req.Decode(msg); err != nil {
		t.Fatalf("answered a request that does not decode: %v", err)
	}
	if err := rep.Decode(reply.Payload); err != nil {
		t.Fatalf("reply does not decode: %v\n% x", err, reply.Payload)
	}
	if rep.Op != dhcp.OpReply {
		t.Fatalf("reply op %d", rep.Op)
	}
	if binary.BigEndian.Uint32(reply.Payload[4:8]) != binary.BigEndian.Uint32(msg[4:8]) {
		t.Fatal("reply xid differs from the request's")
	}
	if string(rep.HardwareAddr()) != string(req.HardwareAddr()) {
		t.Fatalf("reply chaddr %x, request %x", rep.HardwareAddr(), req.HardwareAddr())
	}
	if max := req.MaxReplySize(); len(reply.Payload) > max && max >= 576 {
		t.Fatalf("reply of %d bytes exceeds the client's maximum %d", len(reply.Payload), max)
	}
	rt, ok := rep.MessageType()
	qt, _ := req.MessageType()
	want := map[dhcp.MessageType]dhcp.MessageType{dhcp.Discover: dhcp.Offer, dhcp.Request: dhcp.Ack}[qt]
	if !ok || rt != want {
		t.Fatalf("%v on port %d answered with %v", qt, port, rt)
	}
	switch {
	case snooping && port != pxe.PortSnoopServer, !snooping && qt == dhcp.Discover && port != pxe.PortDHCPServer,
		!snooping && qt == dhcp.Request && port != pxe.PortBootServer:
		t.Fatalf("%v answered on port %d (snooping %v)", qt, port, snooping)
	}
	if snooping && reply.DstPort != pxe.PortSnoopClient {
		t.Fatalf("snooping reply to port %d", reply.DstPort)
	}
	if sid, ok := rep.ServerID(); !ok || sid != serverIP.As4() {
		t.Fatalf("server identifier %v %v", sid, ok)
	}
	vc, ok := rep.VendorClass()
	if !ok || (vc.Kind != dhcp.VendorPXE && vc.Kind != dhcp.VendorHTTP) {
		t.Fatalf("reply vendor class %+v", vc)
	}
	// The reply must be addressable by the one routing rule.
	a, err := engine.AddressingFromBOOTP(reply.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if d := engine.Route(a, &engine.Packet{SrcPort: pxe.PortDHCPClient, DstPort: port}); !d.IP.Is4() || d.Port == 0 {
		t.Fatalf("reply routed to %+v", d)
	}
}

// TestSeedsAreAnswered keeps the fuzz target honest: the captured
// DISCOVERs and boot-server REQUESTs are answered, so the reply checks run
// on real replies.
func TestSeedsAreAnswered(t *testing.T) {
	pol := &pxe.StaticPolicy{}
	for _, s := range []string{"bios=bios.0", "efi64=x64.efi"} {
		if err := pol.Table.Parse(s); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := pxe.New(context.Background(), pxe.Config{ServerIP: serverIP, Decider: pol, PerMACRate: -1, GlobalRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seed string
		port uint16
	}{
		{"ovmf-uefi-x64-proxydhcp-to67-1.bin", 67},
		{"ovmf-uefi-x64-proxydhcp-to4011-3.bin", 4011},
		{"seabios-ipxe-bios-proxydhcp-to67-1.bin", 67},
		{"seabios-ipxe-bios-proxydhcp-to4011-3.bin", 4011},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join("testdata/seeds", tc.seed))
			if err != nil {
				t.Fatal(err)
			}
			reply := engine.NewReplyBuffer()
			req := &engine.Packet{Payload: msg, SrcPort: pxe.PortDHCPClient, DstPort: tc.port}
			if !srv.Handle(req, reply) {
				t.Fatalf("captured request on %d not answered: %+v", tc.port, srv.Stats())
			}
			checkReply(t, msg, tc.port, false, reply)
		})
	}
}
