package pxe

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		arch Arch
		want Class
	}{
		{0, ClassBIOS}, {6, ClassEFI32}, {7, ClassEFI64}, {9, ClassEFI64}, {10, ClassARM32},
		{11, ClassARM64}, {15, ClassHTTPEFI32}, {16, ClassHTTPEFI64}, {18, ClassHTTPARM32},
		{19, ClassHTTPARM64}, {1, ClassUnknown}, {17, ClassUnknown}, {0xffff, ClassUnknown},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.arch); got != tt.want {
			t.Errorf("ClassOf(%d) = %s, want %s", tt.arch, got, tt.want)
		}
	}
}

func TestParseClassRoundTrip(t *testing.T) {
	for _, n := range ClassNames() {
		c, err := ParseClass(n)
		if err != nil {
			t.Fatalf("ParseClass(%q): %v", n, err)
		}
		if c.String() != n {
			t.Errorf("ParseClass(%q).String() = %q", n, c.String())
		}
	}
	if _, err := ParseClass("sparc"); err == nil {
		t.Error("ParseClass(sparc) accepted")
	}
	if c, _ := ParseClass(" EFI64 "); c != ClassEFI64 {
		t.Errorf("ParseClass is not case/space tolerant: %s", c)
	}
}

func TestBootTableParse(t *testing.T) {
	tests := []struct {
		setting string
		class   Class
		wantErr bool
	}{
		{"bios=undionly.kpxe", ClassBIOS, false},
		{"efi64=boot/x64/ipxe.efi", ClassEFI64, false},
		{"arm64=grubaa64.efi", ClassARM64, false},
		{"http-efi64=http://198.18.0.1/boot.efi", ClassHTTPEFI64, false},
		{"http-efi64=boot.efi", ClassHTTPEFI64, true}, // HTTP boot needs a URL
		{"efi64=", ClassEFI64, true},
		{"nonsense", ClassUnknown, true},
		{"ppc=x", ClassUnknown, true},
	}
	for _, tt := range tests {
		var bt BootTable
		err := bt.Parse(tt.setting)
		if (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q) error = %v, wantErr %v", tt.setting, err, tt.wantErr)
			continue
		}
		if err == nil {
			_, file, _ := cut(tt.setting)
			if bt.File(tt.class) != file {
				t.Errorf("Parse(%q): File(%s) = %q", tt.setting, tt.class, bt.File(tt.class))
			}
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestStaticPolicy(t *testing.T) {
	var p StaticPolicy
	for _, s := range []string{"bios=bios.0", "efi64=x64.efi", "http-efi64=http://198.18.0.1/x64.efi"} {
		if err := p.Table.Parse(s); err != nil {
			t.Fatal(err)
		}
	}
	p.Table.IPXEScript = "boot.ipxe"
	p.Server = netip.MustParseAddr("198.18.0.1")
	ignored, _ := ParseMAC("52:54:00:00:00:99")
	if err := p.IgnoreMAC("52:54:00:00:00:99"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		c       Client
		action  Action
		file    string
		wantErr error
	}{
		{"bios", Client{Class: ClassBIOS}, Boot, "bios.0", nil},
		{"efi64", Client{Class: ClassEFI64}, Boot, "x64.efi", nil},
		{"ipxe gets script", Client{Class: ClassBIOS, IPXE: true}, Boot, "boot.ipxe", nil},
		{"http boot", Client{Class: ClassHTTPEFI64, HTTPBoot: true}, Boot, "http://198.18.0.1/x64.efi", nil},
		{"no file for arm64", Client{Class: ClassARM64}, Ignore, "", ErrNoBootFile},
		{"ignored mac", Client{MAC: ignored, Class: ClassBIOS}, Ignore, "", nil},
	}
	for _, tt := range tests {
		d, err := p.Decide(context.Background(), &tt.c)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
		}
		if d.Action != tt.action || d.BootFile != tt.file {
			t.Errorf("%s: got %s %q, want %s %q", tt.name, d.Action, d.BootFile, tt.action, tt.file)
		}
		if d.Action == Boot && d.Server != p.Server {
			t.Errorf("%s: server %v, want %v", tt.name, d.Server, p.Server)
		}
	}
}

func TestParseMAC(t *testing.T) {
	m, err := ParseMAC("52:54:00:Ab:cd:EF")
	if err != nil || m != [6]byte{0x52, 0x54, 0, 0xab, 0xcd, 0xef} {
		t.Fatalf("ParseMAC = %x, %v", m, err)
	}
	for _, bad := range []string{"", "52:54:00:ab:cd", "52:54:00:ab:cd:eg", "52.54.00.ab.cd.ef"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
}

func TestGlobalLimiter(t *testing.T) {
	l := globalLimiter{g: newGCRA(10, 5)} // 10/s, burst 5
	now := int64(1e12)
	n := 0
	for i := 0; i < 20; i++ {
		if l.allow(now) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("burst allowed %d, want 5", n)
	}
	if !l.allow(now + int64(100*time.Millisecond)) {
		t.Fatal("one token after 100ms at 10/s was refused")
	}
	if l.allow(now + int64(100*time.Millisecond)) {
		t.Fatal("second token after 100ms at 10/s was allowed")
	}
}

func TestMACLimiter(t *testing.T) {
	l := macLimiter{g: newGCRA(1, 2)}
	now := int64(1e12)
	a := [6]byte{1, 2, 3, 4, 5, 6}
	b := [6]byte{1, 2, 3, 4, 5, 7}
	if !l.allow(a, now) || !l.allow(a, now) {
		t.Fatal("burst of 2 refused")
	}
	if l.allow(a, now) {
		t.Fatal("third packet of one MAC in the same instant allowed")
	}
	if !l.allow(b, now) {
		t.Fatal("another MAC was limited by the first one")
	}
	if !l.allow(a, now+int64(time.Second)) {
		t.Fatal("MAC not allowed again after a second")
	}
	// many MACs: the table stays bounded and still limits a hot MAC
	for i := 0; i < 100000; i++ {
		m := [6]byte{0xaa, byte(i >> 16), byte(i >> 8), byte(i), 0, 0}
		l.allow(m, now)
	}
	hot := [6]byte{9, 9, 9, 9, 9, 9}
	allowed := 0
	for i := 0; i < 10; i++ {
		if l.allow(hot, now) {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("hot MAC allowed %d of 10 in one instant, want 2", allowed)
	}
}

type countingDecider struct {
	calls int
	next  string
}

func (c *countingDecider) Decide(_ context.Context, _ *Client) (Decision, error) {
	c.calls++
	return Decision{Action: Boot, BootFile: c.next}, nil
}

func TestStickyRetriesGetSameAnswer(t *testing.T) {
	inner := &countingDecider{next: "first.efi"}
	s := NewSticky(inner, time.Minute)
	clock := int64(1e12)
	s.now = func() int64 { return clock }
	c := &Client{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, Class: ClassEFI64}
	d1, _ := s.Decide(context.Background(), c)
	inner.next = "second.efi" // the inner decider changed its mind
	d2, _ := s.Decide(context.Background(), c)
	if d1 != d2 || d2.BootFile != "first.efi" || inner.calls != 1 {
		t.Fatalf("retry got %+v after %+v (%d inner calls)", d2, d1, inner.calls)
	}
	// iPXE from the same MAC is a different question
	c.IPXE = true
	if d3, _ := s.Decide(context.Background(), c); d3.BootFile != "second.efi" {
		t.Fatalf("iPXE client got the cached firmware answer %q", d3.BootFile)
	}
	c.IPXE = false
	clock += int64(2 * time.Minute)
	if d4, _ := s.Decide(context.Background(), c); d4.BootFile != "second.efi" {
		t.Fatalf("expired entry still used: %q", d4.BootFile)
	}
}

// TestStickyUsesArrivalStamp: the cache ages entries by the client's
// arrival stamp when it has one, without reading the clock.
func TestStickyUsesArrivalStamp(t *testing.T) {
	inner := &countingDecider{next: "first.efi"}
	s := NewSticky(inner, time.Minute)
	s.now = func() int64 { t.Fatal("sticky read the clock for a stamped client"); return 0 }
	c := &Client{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 9}, Class: ClassEFI64, Received: 1e12}
	d1, _ := s.Decide(context.Background(), c)
	inner.next = "second.efi"
	c.Received += int64(30 * time.Second)
	if d2, _ := s.Decide(context.Background(), c); d2 != d1 {
		t.Fatalf("retry within the TTL got %+v, want %+v", d2, d1)
	}
	c.Received += int64(time.Minute)
	if d3, _ := s.Decide(context.Background(), c); d3.BootFile != "second.efi" {
		t.Fatalf("retry after the TTL got the expired answer %q", d3.BootFile)
	}
}
