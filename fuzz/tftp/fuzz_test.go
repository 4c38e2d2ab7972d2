package tftp

import (
	"bytes"
	"errors"
	"github.com/peerboot/peerboot/internal/tsharkcheck"
	"path/filepath"
	"reflect"
	"testing"

	codec "github.com/peerboot/peerboot/codec/tftp"
)

func addSeeds(f *testing.F) {
	files, err := filepath.Glob("../../codec/tftp/testdata/*.pcap")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed captures: %v", err)
	}
	n := 0
	for _, name := range files {
		payloads, err := tsharkcheck.UDPPayloads(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range payloads {
			f.Add(p)
			n++
		}
	}
	if n < 100 {
		f.Fatalf("only %d seed packets", n)
	}
	for _, s := range []string{"", "\x00", "\x00\x01", "\x00\x01a\x00octet\x00blksize\x00", "\x00\x06tsize\x00x\x00",
		"\x00\x05\x00\x01", "\x00\x04\x00\x00\x00", "\x00\x01\\Boot\\BCD\x00OCTET\x00windowsize\x0064\x00\x00"} {
		f.Add([]byte(s))
	}
}

// decodeAny decodes b with the decoder its opcode selects and reports any
// error; it must never panic.
func decodeAny(b []byte) error {
	op, err := codec.PacketOpcode(b)
	if err != nil {
		return err
	}
	switch op {
	case codec.OpRRQ, codec.OpWRQ:
		var r codec.Request
		return codec.ParseRequest(b, &r)
	case codec.OpOACK:
		var o codec.Options
		return codec.ParseOACK(b, &o)
	case codec.OpDATA:
		_, err = codec.ParseData(b)
	case codec.OpACK:
		_, err = codec.ParseAck(b)
	case codec.OpERROR:
		_, err = codec.ParseError(b)
	}
	return err
}

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		err := decodeAny(b)
		if k, ok := err.(codec.Kind); ok {
			// PacketOpcode's allocation-free error: only these two kinds.
			if k != codec.KindTruncated && k != codec.KindBadOpcode {
				t.Fatalf("PacketOpcode returned kind %v", k)
			}
		} else if err != nil {
			var de *codec.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a DecodeError or a Kind: %T %v", err, err)
			}
			if de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("offset %d outside packet of %d bytes", de.Offset, len(b))
			}
		}
		if !bytes.Equal(orig, b) {
			t.Fatal("decoder modified its input")
		}
	})
}

// FuzzDecodeEncode checks that whatever decodes re-encodes to a packet
// that decodes to the same value.
func FuzzDecodeEncode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := codec.PacketOpcode(b)
		if err != nil {
			return
		}
		switch op {
		case codec.OpRRQ, codec.OpWRQ:
			var r1, r2 codec.Request
			if codec.ParseRequest(b, &r1) != nil {
				return
			}
			out, err := codec.AppendRequest(nil, &r1)
			if err != nil {
				t.Fatalf("decoded request does not re-encode: %v", err)
			}
			if err := codec.ParseRequest(out, &r2); err != nil {
				t.Fatalf("re-encoded request does not decode: %v %q", err, out)
			}
			if !reflect.DeepEqual(r1, r2) {
				t.Fatalf("request changed:\n%+v\n%+v", r1, r2)
			}
		case codec.OpOACK:
			var o1, o2 codec.Options
			if codec.ParseOACK(b, &o1) != nil {
				return
			}
			out, err := codec.AppendOACK(nil, &o1)
			if err != nil {
				t.Fatal(err)
			}
			if err := codec.ParseOACK(out, &o2); err != nil || !reflect.DeepEqual(o1, o2) {
				t.Fatalf("OACK changed: %v\n%+v\n%+v", err, o1, o2)
			}
		case codec.OpDATA:
			d, err := codec.ParseData(b)
			if err != nil {
				return
			}
			if out := codec.AppendData(nil, d.Block, d.Payload); !bytes.Equal(out, b) {
				t.Fatalf("DATA %q became %q", b, out)
			}
		case codec.OpACK:
			blk, err := codec.ParseAck(b)
			if err != nil {
				return
			}
			if out := codec.AppendAck(nil, blk); !bytes.Equal(out, b) {
				t.Fatalf("ACK %q became %q", b, out)
			}
		case codec.OpERROR:
			e, err := codec.ParseError(b)
			if err != nil {
				return
			}
			if out := codec.AppendError(nil, e.Code, string(e.Message)); !bytes.Equal(out, b) {
				t.Fatalf("ERROR %q became %q", b, out)
			}
		}
	})
}
