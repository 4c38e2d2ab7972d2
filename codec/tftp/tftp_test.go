package tftp

import (
	"bytes"
	"errors"
	"github.com/peerboot/peerboot/internal/tsharkcheck"
	"path/filepath"
	"reflect"
	"testing"
)

// corpusPackets returns the UDP payloads of every TFTP packet in the
// captures under testdata.
func corpusPackets(t testing.TB) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		payloads, err := tsharkcheck.UDPPayloads(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = payloads
	}
	return out
}

func TestGoldenCorpus(t *testing.T) {
	pk := corpusPackets(t)
	ovmf, ipxe := pk["ovmf-uefi-tftp.pcap"], pk["ipxe-bios-tftp.pcap"]
	if len(ovmf) != 96 || len(ipxe) != 95 {
		t.Fatalf("corpus sizes: ovmf %d ipxe %d", len(ovmf), len(ipxe))
	}
	var r Request
	// OVMF: tsize probe RRQ with tsize, blksize, windowsize.
	if err := ParseRequest(ovmf[0], &r); err != nil {
		t.Fatal(err)
	}
	if r.Opcode != OpRRQ || string(r.Filename) != "lab-efi64.efi" || r.Mode != ModeOctet ||
		r.Present != OptTsize|OptBlksize|OptWindowsize || r.Tsize != 0 || r.Blksize != 1468 || r.Windowsize != 4 || len(r.Extra()) != 0 {
		t.Fatalf("OVMF RRQ decoded wrong: %+v", r)
	}
	var o Options
	if err := ParseOACK(ovmf[1], &o); err != nil {
		t.Fatal(err)
	}
	if o.Present != OptBlksize|OptTsize || o.Blksize != 1468 || o.Tsize != 65536 {
		t.Fatalf("OACK decoded wrong: %+v", o)
	}
	e, err := ParseError(ovmf[2])
	if err != nil {
		t.Fatal(err)
	}
	if e.Code != ErrCodeOptionNegotiation || string(e.Message) != "User aborted the transfer" {
		t.Fatalf("ERROR decoded wrong: %d %q", e.Code, e.Message)
	}
	if err := ParseRequest(ovmf[3], &r); err != nil {
		t.Fatal(err)
	}
	if r.Present != OptBlksize|OptWindowsize || r.Windowsize != 4 {
		t.Fatalf("second OVMF RRQ: %+v", r)
	}
	// iPXE: blksize 1432 + tsize.
	if err := ParseRequest(ipxe[0], &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Filename) != "lab-bios.0" || r.Present != OptBlksize|OptTsize || r.Blksize != 1432 {
		t.Fatalf("iPXE RRQ: %+v", r)
	}
	if blk, err := ParseAck(ipxe[2]); err != nil || blk != 0 {
		t.Fatalf("iPXE ACK 0: %d %v", blk, err)
	}
	// Walk the iPXE lock-step download: DATA n then ACK n, last block short.
	total := 0
	for i := 3; i < len(ipxe); i += 2 {
		d, err := ParseData(ipxe[i])
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		want := uint16((i-3)/2 + 1)
		if d.Block != want {
			t.Fatalf("packet %d: block %d want %d", i, d.Block, want)
		}
		total += len(d.Payload)
		if i+1 < len(ipxe) {
			if blk, err := ParseAck(ipxe[i+1]); err != nil || blk != want {
				t.Fatalf("ack after %d: %d %v", want, blk, err)
			}
		}
	}
	if total != 65536 {
		t.Fatalf("iPXE download carried %d bytes, want 65536", total)
	}
}

// reencode decodes p and builds it again with the matching builder.
func reencode(p []byte) ([]byte, error) {
	op, err := PacketOpcode(p)
	if err != nil {
		return nil, err
	}
	switch op {
	case OpRRQ, OpWRQ:
		var r Request
		if err := ParseRequest(p, &r); err != nil {
			return nil, err
		}
		return AppendRequest(nil, &r)
	case OpOACK:
		var o Options
		if err := ParseOACK(p, &o); err != nil {
			return nil, err
		}
		return AppendOACK(nil, &o)
	case OpDATA:
		d, err := ParseData(p)
		if err != nil {
			return nil, err
		}
		return AppendData(nil, d.Block, d.Payload), nil
	case OpACK:
		b, err := ParseAck(p)
		if err != nil {
			return nil, err
		}
		return AppendAck(nil, b), nil
	case OpERROR:
		e, err := ParseError(p)
		if err != nil {
			return nil, err
		}
		return AppendError(nil, e.Code, string(e.Message)), nil
	}
	return nil, ErrBadOpcode
}

func TestCorpusRoundTrip(t *testing.T) {
	for name, pkts := range corpusPackets(t) {
		for i, p := range pkts {
			got, err := reencode(p)
			if err != nil {
				t.Fatalf("%s #%d: %v", name, i, err)
			}
			// Known options are re-emitted in a canonical order, so compare
			// decoded values rather than bytes for requests and OACKs.
			if !samePacket(t, p, got) {
				t.Fatalf("%s #%d: round trip differs:\n%q\n%q", name, i, p, got)
			}
		}
	}
}

func samePacket(t testing.TB, a, b []byte) bool {
	op, _ := PacketOpcode(a)
	switch op {
	case OpRRQ, OpWRQ:
		var ra, rb Request
		if ParseRequest(a, &ra) != nil || ParseRequest(b, &rb) != nil {
			return false
		}
		return reflect.DeepEqual(ra, rb)
	case OpOACK:
		var oa, ob Options
		if ParseOACK(a, &oa) != nil || ParseOACK(b, &ob) != nil {
			return false
		}
		return reflect.DeepEqual(oa, ob)
	}
	return bytes.Equal(a, b)
}

func TestParseRequestTable(t *testing.T) {
	long := bytes.Repeat([]byte("a"), MaxFilenameLen+1)
	tests := []struct {
		name   string
		pkt    string
		want   Kind // 0 = success
		offset int
		check  func(*Request) bool
	}{
		{"plain rrq", "\x00\x01boot.efi\x00octet\x00", 0, 0, func(r *Request) bool {
			return string(r.Filename) == "boot.efi" && r.Mode == ModeOctet && r.Present == 0
		}},
		{"wrq netascii upper", "\x00\x02f\x00NetASCII\x00", 0, 0, func(r *Request) bool { return r.Opcode == OpWRQ && r.Mode == ModeNetascii }},
		{"mixed-case options and unknown kept", "\x00\x01\\Boot\\x64\\BCD\x00octet\x00BLKSIZE\x001468\x00utimeout\x00500\x00WindowSize\x0064\x00timeout\x003\x00", 0, 0, func(r *Request) bool {
			x := r.Extra()
			return string(r.Filename) == `\Boot\x64\BCD` && r.Blksize == 1468 && r.Windowsize == 64 && r.Timeout == 3 &&
				len(x) == 1 && string(x[0].Name) == "utimeout" && string(x[0].Value) == "500"
		}},
		{"nul padding accepted", "\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00", 0, 0, func(r *Request) bool { return r.Has(OptTsize) && r.Tsize == 0 }},
		{"large tsize", "\x00\x01f\x00octet\x00tsize\x005000000000\x00", 0, 0, func(r *Request) bool { return r.Tsize == 5000000000 }},
		{"empty", "", KindTruncated, 0, nil},
		{"one byte", "\x00", KindTruncated, 1, nil},
		{"bad opcode", "\x00\x09f\x00octet\x00", KindBadOpcode, 0, nil},
		{"data is not a request", "\x00\x03\x00\x01", KindBadOpcode, 0, nil},
		{"name not terminated", "\x00\x01boot", KindNotTerminated, 2, nil},
		{"mode not terminated", "\x00\x01f\x00octet", KindNotTerminated, 4, nil},
		{"empty name", "\x00\x01\x00octet\x00", KindEmptyFilename, 2, nil},
		{"name too long", "\x00\x01" + string(long) + "\x00octet\x00", KindTooLong, 2, nil},
		{"bad mode", "\x00\x01f\x00binary\x00", KindBadMode, 4, nil},
		{"overlong mode", "\x00\x01f\x00octetoctet\x00", KindBadMode, 4, nil},
		{"option without value", "\x00\x01f\x00octet\x00blksize\x00", KindNotTerminated, 18, nil},
		{"option value not terminated", "\x00\x01f\x00octet\x00blksize\x00512", KindNotTerminated, 18, nil},
		{"empty option name", "\x00\x01f\x00octet\x00\x00x\x00", KindEmptyOptionName, 10, nil},
		{"non numeric blksize", "\x00\x01f\x00octet\x00blksize\x0015x\x00", KindBadOptionValue, 18, nil},
		{"negative windowsize", "\x00\x01f\x00octet\x00windowsize\x00-1\x00", KindBadOptionValue, 21, nil},
		{"empty tsize", "\x00\x01f\x00octet\x00tsize\x00\x00", KindBadOptionValue, 16, nil},
		{"huge number", "\x00\x01f\x00octet\x00tsize\x009999999999999999999\x00", KindBadOptionValue, 16, nil},
		{"duplicate known", "\x00\x01f\x00octet\x00blksize\x00512\x00BLKSIZE\x00600\x00", KindDuplicateOption, 22, nil},
		{"duplicate unknown", "\x00\x01f\x00octet\x00x\x001\x00X\x002\x00", KindDuplicateOption, 14, nil},
		{"too many unknown", "\x00\x01f\x00octet\x00a\x001\x00b\x001\x00c\x001\x00d\x001\x00e\x001\x00f\x001\x00g\x001\x00h\x001\x00i\x001\x00", KindTooManyOptions, 42, nil},
		{"option name too long", "\x00\x01f\x00octet\x00" + string(long[:MaxOptionNameLen+1]) + "\x001\x00", KindTooLong, 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := ParseRequest([]byte(tc.pkt), &r)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if !tc.check(&r) {
					t.Fatalf("decoded wrong: %+v", r)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			de, ok := AsDecodeError(err)
			if !ok || de.Offset != tc.offset {
				t.Fatalf("error %v: want offset %d", err, tc.offset)
			}
		})
	}
}

func TestFixedPacketsTable(t *testing.T) {
	tests := []struct {
		name string
		pkt  string
		op   Opcode
		want Kind
	}{
		{"ack", "\x00\x04\xff\xff", OpACK, 0},
		{"ack short", "\x00\x04\x01", OpACK, KindTruncated},
		{"ack long", "\x00\x04\x00\x01\x00", OpACK, KindTrailingGarbage},
		{"ack wrong opcode", "\x00\x03\x00\x01", OpACK, KindBadOpcode},
		{"data empty payload", "\x00\x03\x00\x07", OpDATA, 0},
		{"data short", "\x00\x03\x00", OpDATA, KindTruncated},
		{"error", "\x00\x05\x00\x01no\x00", OpERROR, 0},
		{"error no nul", "\x00\x05\x00\x01no", OpERROR, KindNotTerminated},
		{"error trailing", "\x00\x05\x00\x01no\x00x", OpERROR, KindTrailingGarbage},
		{"error short", "\x00\x05\x00\x01", OpERROR, KindTruncated},
		{"oack empty", "\x00\x06", OpOACK, 0},
		{"oack bad value", "\x00\x06blksize\x00x\x00", OpOACK, KindBadOptionValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.op {
			case OpACK:
				_, err = ParseAck([]byte(tc.pkt))
			case OpDATA:
				_, err = ParseData([]byte(tc.pkt))
			case OpERROR:
				_, err = ParseError([]byte(tc.pkt))
			case OpOACK:
				var o Options
				err = ParseOACK([]byte(tc.pkt), &o)
			}
			if tc.want == 0 && err != nil {
				t.Fatalf("unexpected %v", err)
			}
			if tc.want != 0 && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// builderOutputs returns one packet from every builder, with a variety of
// options, for round-trip and tshark checks.
func builderOutputs(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	r := Request{Opcode: OpRRQ, Filename: []byte("boot/x64/bcd"), Mode: ModeOctet}
	r.SetBlksize(1468)
	r.SetTsize(0)
	r.SetTimeout(2)
	r.SetWindowsize(16)
	if err := r.AddExtra([]byte("msftwindow"), []byte("31416")); err != nil {
		t.Fatal(err)
	}
	p, err := AppendRequest(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, p)
	var o Options
	o.SetBlksize(1468)
	o.SetTsize(5000000000)
	o.SetWindowsize(16)
	p, err = AppendOACK(nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, p, AppendAck(nil, 0), AppendData(nil, 1, bytes.Repeat([]byte{0xa5}, 1468)), AppendAck(nil, 1),
		AppendData(nil, 2, []byte("last")), AppendAck(nil, 2))
	for c := ErrCodeNotDefined; c <= ErrCodeOptionNegotiation; c++ {
		out = append(out, AppendError(nil, c, c.String()))
	}
	w := Request{Opcode: OpWRQ, Filename: []byte("upload.txt"), Mode: ModeNetascii}
	p, err = AppendRequest(nil, &w)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, p)
}

func TestBuilderRoundTrip(t *testing.T) {
	for i, p := range builderOutputs(t) {
		got, err := reencode(p)
		if err != nil {
			t.Fatalf("#%d %q: %v", i, p, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("#%d: %q re-encoded as %q", i, p, got)
		}
	}
	// The request built above decodes to exactly what was set.
	var r Request
	if err := ParseRequest(builderOutputs(t)[0], &r); err != nil {
		t.Fatal(err)
	}
	if r.Blksize != 1468 || r.Tsize != 0 || r.Timeout != 2 || r.Windowsize != 16 || string(r.Extra()[0].Name) != "msftwindow" {
		t.Fatalf("request decoded as %+v", r)
	}
}

func TestBuilderRejectsInvalid(t *testing.T) {
	cases := []struct {
		r    Request
		want error
	}{
		{Request{Opcode: OpDATA, Filename: []byte("f"), Mode: ModeOctet}, ErrBadOpcode},
		{Request{Opcode: OpRRQ, Mode: ModeOctet}, ErrEmptyFilename},
		{Request{Opcode: OpRRQ, Filename: []byte("a\x00b"), Mode: ModeOctet}, ErrNotTerminated},
		{Request{Opcode: OpRRQ, Filename: []byte("f")}, ErrBadMode},
		{Request{Opcode: OpRRQ, Filename: bytes.Repeat([]byte("a"), MaxFilenameLen+1), Mode: ModeOctet}, ErrTooLong},
	}
	for i, c := range cases {
		if _, err := AppendRequest(nil, &c.r); !errors.Is(err, c.want) {
			t.Errorf("#%d: %v want %v", i, err, c.want)
		}
	}
	var o Options
	o.SetBlksize(-1)
	if _, err := AppendOACK(nil, &o); !errors.Is(err, ErrBadOptionValue) {
		t.Errorf("negative blksize: %v", err)
	}
	if err := o.AddExtra([]byte("tsize"), []byte("1")); !errors.Is(err, ErrDuplicateOption) {
		t.Errorf("known option as extra: %v", err)
	}
	if err := o.AddExtra([]byte("x"), []byte("a\x00")); !errors.Is(err, ErrNotTerminated) {
		t.Errorf("NUL in value: %v", err)
	}
	// ERROR messages are cut at NUL so the packet stays valid.
	e, err := ParseError(AppendError(nil, ErrCodeAccessViolation, "bad\x00tail"))
	if err != nil || string(e.Message) != "bad" {
		t.Errorf("NUL in message: %q %v", e.Message, err)
	}
}

func TestZeroAllocs(t *testing.T) {
	pk := corpusPackets(t)["ovmf-uefi-tftp.pcap"]
	rrq, oack, errPkt, ack, data := pk[0], pk[1], pk[2], pk[5], pk[6]
	if op, _ := PacketOpcode(ack); op != OpACK {
		t.Fatalf("corpus packet 5 is %v, want ACK", op)
	}
	if op, _ := PacketOpcode(data); op != OpDATA {
		t.Fatalf("corpus packet 6 is %v, want DATA", op)
	}
	var r Request
	var o Options
	unterminated := []byte{0, 1, 'b', 'o', 'o', 't'}
	badOption := []byte("\x00\x01f\x00octet\x00blksize\x00x\x00")
	buf := make([]byte, 0, 2048)
	payload := make([]byte, 1468)
	var sink int
	checks := map[string]func(){
		"ParseRequest": func() { _ = ParseRequest(rrq, &r); sink += len(r.Filename) },
		// A malformed request must cost nothing either: a flood is made of them.
		"ParseRequest unterminated": func() {
			if ParseRequest(unterminated, &r) != nil {
				sink++
			}
		},
		"ParseRequest bad option": func() {
			if ParseRequest(badOption, &r) != nil {
				sink++
			}
		},
		"ParseOACK":    func() { _ = ParseOACK(oack, &o) },
		"ParseError":   func() { e, _ := ParseError(errPkt); sink += len(e.Message) },
		"ParseAck":     func() { b, _ := ParseAck(ack); sink += int(b) },
		"ParseData":    func() { d, _ := ParseData(data); sink += len(d.Payload) },
		"PacketOpcode": func() { op, _ := PacketOpcode(data); sink += int(op) },
		"PacketOpcode bad": func() {
			if _, err := PacketOpcode(unterminated[:1]); err != nil {
				sink++
			}
		},
		"AppendRequest": func() {
			p, _ := AppendRequest(buf[:0], &r)
			sink += len(p)
		},
		"AppendOACK":    func() { p, _ := AppendOACK(buf[:0], &o); sink += len(p) },
		"AppendData":    func() { sink += len(AppendData(buf[:0], 7, payload)) },
		"PutDataHeader": func() { PutDataHeader(buf[:4], 9) },
		"AppendAck":     func() { sink += len(AppendAck(buf[:0], 7)) },
		"AppendError": func() {
			sink += len(AppendError(buf[:0], ErrCodeFileNotFound, "file not found"))
		},
	}
	for name, fn := range checks {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	if sink == 0 {
		t.Fatal("nothing decoded")
	}
}
