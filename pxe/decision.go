package pxe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MsgKind says which step of the PXE exchange a client is at.
type MsgKind uint8

// The two requests a PXE boot server answers.
const (
	MsgDiscover MsgKind = iota + 1 // DHCPDISCOVER broadcast to 67 (or 2067)
	MsgRequest                     // boot-server DHCPREQUEST to 4011 (or 2067)
)

// Client is everything the boot server knows about one PXE client when it
// asks the Decider. Byte slices alias the packet being handled: a Decider
// must copy what it keeps beyond the call.
type Client struct {
	MAC       [6]byte
	GUID      [16]byte // option 97 UUID in wire order; valid when HasGUID
	HasGUID   bool     // option 97 present and usable (not all-zero / all-FF)
	Arch      Arch     // first entry of option 93 (ArchBIOS when absent)
	HasArch   bool
	Class     Class
	Kind      MsgKind
	IPXE      bool // iPXE (option 175 or user class "iPXE")
	HTTPBoot  bool // option 60 starts with HTTPClient
	Vendor    []byte
	UserClass []byte
	GIAddr    netip.Addr // relay address; invalid when not relayed
	CircuitID []byte     // option 82 sub-option 1
	RemoteID  []byte     // option 82 sub-option 2
	// Received is when the request arrived, on the engine.Now clock.
	Received int64
}

// Relayed reports whether the request came through a DHCP relay.
func (c *Client) Relayed() bool { return c.GIAddr.IsValid() && !c.GIAddr.IsUnspecified() }

// Action is what the boot server does for a client.
type Action uint8

// Actions a Decider returns. The zero value ignores the client.
const (
	// Ignore sends nothing: another server (or nobody) answers.
	Ignore Action = iota
	// Boot answers with a boot file and a server to fetch it from.
	Boot
	// Abort tells the client not to boot from the network. With a boot
	// file set (an NBP that exits to the next boot device) it is served
	// like Boot; without one the client gets no answer. Counted apart.
	Abort
)

func (a Action) String() string {
	switch a {
	case Ignore:
		return "ignore"
	case Boot:
		return "boot"
	case Abort:
		return "abort"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decision is a Decider's answer for one client.
type Decision struct {
	Action   Action
	BootFile string     // TFTP path, or a URL for HTTP boot and iPXE scripts
	Server   netip.Addr // server holding the file; invalid = this agent
}

// Decider chooses what a client boots. The static policy implements it
// now; Central and the subnet election plug in here later. Decide is
// called on the packet path: it must be fast, must not keep c, and must
// return the same decision for retries of the same client.
type Decider interface {
	Decide(ctx context.Context, c *Client) (Decision, error)
}

// BootTable maps each boot class to its boot file, plus the script handed
// to iPXE clients so that chainloading iPXE does not loop.
type BootTable struct {
	files      [numClasses]string
	IPXEScript string // TFTP path or URL; empty = iPXE gets the class's file
}

// Set configures the boot file of a class. HTTP-boot classes need an
// http:// or https:// URL.
func (t *BootTable) Set(c Class, file string) error {
	if c == ClassUnknown || c >= numClasses {
		return fmt.Errorf("boot table: invalid class %d", uint8(c))
	}
	if file == "" {
		return fmt.Errorf("boot table: %s: empty boot file", c)
	}
	if len(file) > 127 {
		return fmt.Errorf("boot table: %s: boot file %q longer than the 127 bytes BOOTP allows", c, file)
	}
	if c.HTTP() && !strings.HasPrefix(file, "http://") && !strings.HasPrefix(file, "https://") {
		return fmt.Errorf("boot table: %s is UEFI HTTP boot and needs an http:// or https:// URL, got %q", c, file)
	}
	t.files[c] = file
	return nil
}

// Parse reads one "class=path" setting, as given to --bootfile.
func (t *BootTable) Parse(setting string) error {
	name, file, ok := strings.Cut(setting, "=")
	if !ok {
		return fmt.Errorf("boot file %q: want ARCH=PATH", setting)
	}
	c, err := ParseClass(name)
	if err != nil {
		return fmt.Errorf("boot file %q: %w", setting, err)
	}
	return t.Set(c, file)
}

// File returns the boot file of a class ("" when none is configured).
func (t *BootTable) File(c Class) string {
	if c < numClasses {
		return t.files[c]
	}
	return ""
}

// Empty reports whether no class has a boot file.
func (t *BootTable) Empty() bool {
	for _, f := range t.files {
		if f != "" {
			return false
		}
	}
	return true
}

// StaticPolicy is the Decider of a standalone agent: a boot table from the
// configuration and a list of MACs to leave alone.
type StaticPolicy struct {
	Table  BootTable
	Server netip.Addr // where the files are; invalid = this agent
	ignore map[[6]byte]struct{}
}

// IgnoreMAC adds a MAC address (e.g. "52:54:00:12:00:10") to the ignore list.
func (p *StaticPolicy) IgnoreMAC(mac string) error {
	m, err := ParseMAC(mac)
	if err != nil {
		return err
	}
	if p.ignore == nil {
		p.ignore = make(map[[6]byte]struct{})
	}
	p.ignore[m] = struct{}{}
	return nil
}

// ErrNoBootFile is returned by Decide when the client's architecture has no
// boot file configured (the client is ignored).
var ErrNoBootFile = errors.New("no boot file for this architecture")

// Decide implements Decider without allocating.
func (p *StaticPolicy) Decide(_ context.Context, c *Client) (Decision, error) {
	if _, skip := p.ignore[c.MAC]; skip {
		return Decision{Action: Ignore}, nil
	}
	if c.IPXE && p.Table.IPXEScript != "" && !c.Class.HTTP() {
		return Decision{Action: Boot, BootFile: p.Table.IPXEScript, Server: p.Server}, nil
	}
	f := p.Table.File(c.Class)
	if f == "" {
		return Decision{Action: Ignore}, ErrNoBootFile
	}
	return Decision{Action: Boot, BootFile: f, Server: p.Server}, nil
}

// ParseMAC parses a 48-bit MAC in colon or dash notation.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	if len(s) != 17 {
		return m, fmt.Errorf("MAC %q: want 6 hex octets like 52:54:00:12:34:56", s)
	}
	for i := 0; i < 6; i++ {
		if i > 0 && s[i*3-1] != ':' && s[i*3-1] != '-' {
			return m, fmt.Errorf("MAC %q: bad separator", s)
		}
		hi, ok1 := unhex(s[i*3])
		lo, ok2 := unhex(s[i*3+1])
		if !ok1 || !ok2 {
			return m, fmt.Errorf("MAC %q: bad hex digit", s)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
