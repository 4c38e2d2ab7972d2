package dhcp_test

import (
	"errors"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
)

var sink int

var errNotTooLarge = errors.New("1800 bytes of options fitted a 1444-byte limit")

// readAll calls every accessor once.
func readAll(p *dhcp.Packet, guid []byte) int {
	n := 0
	if t, ok := p.MessageType(); ok {
		n += int(t)
	}
	if a, ok := p.ServerID(); ok {
		n += int(a[0])
	}
	if a, ok := p.RequestedIP(); ok {
		n += int(a[0])
	}
	if v, ok := p.ParamRequestList(); ok {
		n += len(v)
	}
	if p.Requests(dhcp.OptVendorSpecific) {
		n++
	}
	if m, ok := p.MaxMessageSize(); ok {
		n += int(m)
	}
	n += p.MaxReplySize()
	vc, _ := p.VendorClass()
	n += int(vc.Arch) + int(vc.UNDIMajor) + len(vc.Raw)
	if v, ok := p.ClientID(); ok {
		n += len(v)
	}
	if v, ok := p.UserClass(); ok {
		n += len(v)
	}
	if p.IsIPXE() {
		n++
	}
	if l, ok := p.ClientArchs(); ok {
		n += int(l.At(0)) + l.Len()
	}
	if a, ok := p.ClientArch(); ok {
		n += int(a)
	}
	if v, ok := p.NII(); ok {
		n += int(v.Major)
	}
	if id, ok := p.ClientMachineID(); ok {
		n += len(id.AppendGUID(guid[:0]))
		if id.Usable() {
			n++
		}
	}
	if v, ok := p.PXEOptions(); ok {
		d, _ := v.DiscoveryControl()
		to, pr, _ := v.MenuPrompt()
		typ, _, _ := v.BootItem()
		n += int(d) + int(to) + len(pr) + int(typ)
		for bs := v.BootServers(); bs.Next(); {
			n += bs.NumAddrs()
		}
		for mi := v.BootMenu(); mi.Next(); {
			n += len(mi.Description())
		}
	}
	if v, ok := p.TFTPServerName(); ok {
		n += len(v)
	}
	if v, ok := p.BootFileName(); ok {
		n += len(v)
	}
	if r, ok := p.RelayAgentInfo(); ok {
		c, _ := r.CircuitID()
		n += len(c)
	}
	if x, ok := p.IPXEOptions(); ok {
		v, _ := x.Lookup(177)
		n += len(v)
	}
	if v, ok := p.HostName(); ok {
		n += len(v)
	}
	n += len(p.HardwareAddr()) + len(p.ServerName()) + len(p.BootFile()) + p.Instances(43)
	for it := p.Options(); it.Next(); {
		n += int(it.Code())
	}
	return n
}

func TestZeroAllocDecodeAndAccessors(t *testing.T) {
	msgs := [][]byte{longOptionReply(t)}
	for _, c := range loadCorpus(t) {
		msgs = append(msgs, c.payload)
	}
	var p, q dhcp.Packet
	guid := make([]byte, 0, 64)
	enc := make([]byte, 0, 2048)
	for _, m := range msgs {
		allocs := testing.AllocsPerRun(50, func() {
			if err := p.Decode(m); err != nil {
				t.Fatal(err)
			}
			sink += readAll(&p, guid)
			e := p.AppendEncode(enc[:0])
			if err := q.Decode(e); err != nil || !p.Equal(&q) {
				t.Fatal("round trip")
			}
		})
		if allocs != 0 {
			t.Errorf("decode + accessors + encode allocate %.1f times per run", allocs)
		}
	}
	// the error path does not allocate either
	bad := make([]byte, 300)
	if a := testing.AllocsPerRun(50, func() {
		if p.Decode(bad) == nil {
			t.Fatal("accepted")
		}
	}); a != 0 {
		t.Errorf("failed Decode allocates %.1f times", a)
	}
}

func TestZeroAllocBuild(t *testing.T) {
	var discover, request dhcp.Packet
	if err := discover.Decode(corpusFrame(t, "ovmf-uefi-x64-proxydhcp.pcap", 2)); err != nil {
		t.Fatal(err)
	}
	if err := request.Decode(corpusFrame(t, "seabios-ipxe-bios-proxydhcp.pcap", 24)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	var b dhcp.Builder
	long := make([]byte, 600)
	cases := []struct {
		name string
		fn   func() error
	}{
		{"ProxyDHCP OFFER", func() error { _, err := buildProxyOffer(&b, buf, &discover); return err }},
		{"boot server ACK", func() error { _, err := buildBootAck(&b, buf, &request); return err }},
		{"split long option", func() error {
			b.Start(buf, dhcp.Ack, 1500)
			b.AddOption(224, long)
			_, err := b.Finish()
			return err
		}},
		{"error: too large for client", func() error {
			b.StartReply(buf, &discover, dhcp.Offer)
			b.AddOption(224, long)
			b.AddOption(225, long)
			b.AddOption(226, long)
			if _, err := b.Finish(); err != dhcp.ErrTooLargeForClient {
				return errNotTooLarge
			}
			return nil
		}},
	}
	for _, c := range cases {
		allocs := testing.AllocsPerRun(50, func() {
			if err := c.fn(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s allocates %.1f times per build", c.name, allocs)
		}
	}
}
