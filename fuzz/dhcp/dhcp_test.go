package dhcp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/peerboot/peerboot/codec/dhcp"
)

// addSeeds adds every message in testdata/seeds, and a message that uses
// option overload with an option split across the three areas.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob("testdata/seeds/*.bin")
	if err != nil || len(files) < 20 {
		f.Fatalf("seed corpus missing: %d files, %v", len(files), err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	m := make([]byte, 240)
	m[0], m[1], m[2] = 1, 1, 6
	copy(m[44:], []byte{43, 1, 'P', 66, 4, 't', 'f', 't', 'p', 255})
	copy(m[108:], []byte{43, 3, 10, 2, 0, 67, 5, 'b', 'o', 'o', 't', 0, 255})
	copy(m[236:], dhcp.Magic[:])
	m = append(m, 53, 1, 1, 52, 1, 3, 43, 3, 6, 1, 3, 97, 3, 0, 1, 2, 97, 14, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 255)
	f.Add(m)
}

// touch calls every accessor of p.
func touch(p *dhcp.Packet) int {
	n := 0
	var guid [64]byte
	mt, _ := p.MessageType()
	sid, _ := p.ServerID()
	rip, _ := p.RequestedIP()
	prl, _ := p.ParamRequestList()
	ms, _ := p.MaxMessageSize()
	n += int(mt) + int(sid[0]) + int(rip[0]) + len(prl) + int(ms) + p.MaxReplySize()
	if p.Requests(dhcp.OptVendorSpecific) {
		n++
	}
	vc, _ := p.VendorClass()
	n += int(vc.Arch) + int(vc.UNDIMajor) + int(vc.UNDIMinor)
	cid, _ := p.ClientID()
	uc, _ := p.UserClass()
	n += len(cid) + len(uc)
	if p.IsIPXE() {
		n++
	}
	if l, ok := p.ClientArchs(); ok {
		for i := 0; i < l.Len(); i++ {
			n += int(l.At(i))
		}
	}
	a, _ := p.ClientArch()
	nii, _ := p.NII()
	n += int(a) + int(nii.Minor)
	id, _ := p.ClientMachineID()
	n += len(id.AppendGUID(guid[:0]))
	if id.Usable() {
		n++
	}
	if v, ok := p.PXEOptions(); ok {
		d, _ := v.DiscoveryControl()
		to, pr, _ := v.MenuPrompt()
		typ, layer, _ := v.BootItem()
		n += int(d) + int(to) + len(pr) + int(typ) + int(layer)
		for bs := v.BootServers(); bs.Next(); {
			for i := 0; i < bs.NumAddrs(); i++ {
				n += int(bs.Addr(i)[3])
			}
		}
		for mi := v.BootMenu(); mi.Next(); {
			n += len(mi.Description()) + int(mi.Type())
		}
		for it := v.Sub().Iter(); it.Next(); {
			n += len(it.Data())
		}
	}
	ts, _ := p.TFTPServerName()
	bf, _ := p.BootFileName()
	hn, _ := p.HostName()
	n += len(ts) + len(bf) + len(hn)
	if r, ok := p.RelayAgentInfo(); ok {
		c, _ := r.CircuitID()
		rid, _ := r.RemoteID()
		n += len(c) + len(rid)
	}
	if x, ok := p.IPXEOptions(); ok {
		v, _ := x.Lookup(177)
		n += len(v)
	}
	n += len(p.HardwareAddr()) + len(p.ServerName()) + len(p.BootFile()) + len(p.SNameField()) + len(p.FileField())
	for it := p.Options(); it.Next(); {
		v, ok := p.Lookup(it.Code())
		if !ok || p.Instances(it.Code()) < 1 {
			panic("option seen by the iterator is missing from the index")
		}
		n += len(v)
	}
	return n
}

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	var p dhcp.Packet
	f.Fuzz(func(t *testing.T, msg []byte) {
		if err := p.Decode(msg); err != nil {
			if _, ok := err.(*dhcp.DecodeError); !ok {
				t.Fatalf("error of type %T", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(msg) < dhcp.HeaderLen || int(p.HLen) > dhcp.MaxCHAddrLen {
			t.Fatalf("accepted %d bytes with hlen %d", len(msg), p.HLen)
		}
		touch(&p)
	})
}

func FuzzDecodeEncode(f *testing.F) {
	addSeeds(f)
	var p, q, r dhcp.Packet
	var b dhcp.Builder
	enc := make([]byte, 0, 4096)
	reply := make([]byte, 1500)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if p.Decode(msg) != nil {
			return
		}
		e := p.AppendEncode(enc[:0])
		if err := q.Decode(e); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !p.Equal(&q) || !q.Equal(&p) {
			t.Fatal("decode(encode(x)) != x")
		}
		if again := q.AppendEncode(nil); !bytes.Equal(again, e) {
			t.Fatal("encoding is not stable")
		}
		// a reply built from any decodable request decodes, with the echo intact
		b.StartReply(reply, &p, dhcp.Offer)
		b.AddServerID([4]byte{198, 18, 0, 1})
		b.AddString(dhcp.OptVendorClass, "PXEClient")
		echoed := b.EchoOption(&p, dhcp.OptClientMachineID)
		b.BeginPXE()
		b.PXEDiscoveryControl(3)
		b.EndPXE()
		out, err := b.Finish()
		if err != nil {
			return // e.g. option 97 too large for the client's limit
		}
		if len(out) > p.MaxReplySize() || len(out) < dhcp.MinBOOTPSize {
			t.Fatalf("reply of %d bytes for a limit of %d", len(out), p.MaxReplySize())
		}
		if err := r.Decode(out); err != nil {
			t.Fatalf("built reply does not decode: %v", err)
		}
		if echoed {
			want, _ := p.Lookup(dhcp.OptClientMachineID)
			got, _ := r.Lookup(dhcp.OptClientMachineID)
			if !bytes.Equal(got, want) {
				t.Fatalf("option 97 echo %x, want %x", got, want)
			}
		}
		if r.XID != p.XID || r.CHAddr != p.CHAddr || r.HLen != p.HLen {
			t.Fatal("reply header does not match the request")
		}
	})
}
