package decide

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/model"
)

// Firmware is the client's boot firmware type.
type Firmware string

// Firmware types.
const (
	BIOS Firmware = "bios"
	UEFI Firmware = "uefi"
)

// ClientArch is what a PXE client can boot.
type ClientArch struct {
	Firmware Firmware
	Arch     model.Arch
}

func (c ClientArch) String() string { return string(c.Firmware) + "-" + string(c.Arch) }

// ParseClientArch accepts "bios-x86", "bios-x64", "uefi-x86", "uefi-x64",
// "uefi-arm64" or a PXE client system architecture number (DHCP option 93,
// RFC 4578): 0 is legacy BIOS, which cannot tell x86 from x64 CPUs and is
// treated as bios-x64 (so it may use x64 or x86 images; an agent that knows
// the CPU is 32-bit sends "bios-x86"); 6 is uefi-x86; 7 and 9 are uefi-x64;
// 11 is uefi-arm64.
func ParseClientArch(s string) (ClientArch, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil {
		switch n {
		case 0:
			return ClientArch{BIOS, model.ArchX64}, nil
		case 6:
			return ClientArch{UEFI, model.ArchX86}, nil
		case 7, 9:
			return ClientArch{UEFI, model.ArchX64}, nil
		case 11:
			return ClientArch{UEFI, model.ArchARM64}, nil
		}
		return ClientArch{}, fmt.Errorf("arch %d: unsupported PXE client architecture", n)
	}
	fw, a, ok := strings.Cut(s, "-")
	c := ClientArch{Firmware(fw), model.Arch(a)}
	if !ok || (c.Firmware != BIOS && c.Firmware != UEFI) || !c.Arch.Valid() || (c.Firmware == BIOS && c.Arch == model.ArchARM64) {
		return ClientArch{}, fmt.Errorf("arch %q: want bios-x86, bios-x64, uefi-x86, uefi-x64, uefi-arm64 or a PXE architecture number", s)
	}
	return c, nil
}

// CanBoot reports whether a client of architecture c can boot an image of
// architecture img: UEFI needs an exact match, BIOS x64 may use x86.
func (c ClientArch) CanBoot(img model.Arch) bool {
	if c.Arch == img {
		return true
	}
	return c.Firmware == BIOS && c.Arch == model.ArchX64 && img == model.ArchX86
}

// Request is one PXE client asking what to boot. MAC and GUID must already
// be normalised (model.NormalizeMAC / NormalizeGUID); an unusable GUID must
// be passed as "".
type Request struct {
	MAC    string
	GUID   string
	Arch   ClientArch
	Subnet netip.Addr // the client's subnet or relay address; invalid = unknown
	Now    time.Time
}

// Decision is the answer for one client.
type Decision struct {
	Boot         bool       `json:"boot"`
	ImageID      string     `json:"image_id,omitempty"`
	ImageArch    model.Arch `json:"image_arch,omitempty"`
	Required     bool       `json:"required"`
	DeploymentID string     `json:"deployment_id,omitempty"`
	MachineID    string     `json:"machine_id,omitempty"`
	// ClientKey identifies the client for consumed required deployments:
	// "m:<machine id>" when known, else "mac:<mac>", else "guid:<guid>".
	ClientKey string `json:"client_key,omitempty"`
	// Repeat is set when a required deployment consumed within the repeat
	// window is offered again for the same boot.
	Repeat bool   `json:"repeat,omitempty"`
	Reason string `json:"reason"`
}

// Reasons a decision gives.
const (
	ReasonIgnored      = "mac ignored"
	ReasonNoIdentity   = "no usable mac or guid"
	ReasonDeployment   = "deployment"
	ReasonUnknown      = "unknown computers deployment"
	ReasonNoDeployment = "no deployment"
	ReasonConsumed     = "required deployment already run; clear it to run again"
	ReasonNoArch       = "no deployment for this architecture"
)

type deployment struct {
	model.Deployment
	prefixes []netip.Prefix
	image    model.Image
}

// Index is the decision data arranged for fast lookups. It is immutable once
// built and safe for concurrent use.
type Index struct {
	byMAC     map[string]*model.Machine
	byGUID    map[string]*model.Machine
	byMachine map[string][]deployment
	unknown   []deployment
	ignored   map[string]bool
}

// NewIndex builds an Index. Deployments whose image or machine is missing,
// or whose subnets do not parse, are left out (they cannot be served).
func NewIndex(cfg model.Config) *Index {
	ix := &Index{
		byMAC:     make(map[string]*model.Machine, len(cfg.Machines)),
		byGUID:    make(map[string]*model.Machine, len(cfg.Machines)),
		byMachine: make(map[string][]deployment),
		ignored:   make(map[string]bool, len(cfg.IgnoredMACs)),
	}
	machines := make(map[string]bool, len(cfg.Machines))
	for i := range cfg.Machines {
		m := &cfg.Machines[i]
		machines[m.ID] = true
		if m.MAC != "" {
			ix.byMAC[m.MAC] = m
		}
		if m.GUID != "" {
			ix.byGUID[m.GUID] = m
		}
	}
	images := make(map[string]model.Image, len(cfg.Images))
	for _, im := range cfg.Images {
		images[im.ID] = im
	}
	for _, d := range cfg.Deployments {
		im, ok := images[d.ImageID]
		if !ok {
			continue
		}
		dd := deployment{Deployment: d, image: im}
		bad := false
		for _, s := range d.Subnets {
			p, err := ParseSubnet(s)
			if err != nil {
				bad = true
				break
			}
			dd.prefixes = append(dd.prefixes, p)
		}
		if bad {
			continue
		}
		switch {
		case d.UnknownComputers:
			ix.unknown = append(ix.unknown, dd)
		case machines[d.MachineID]:
			ix.byMachine[d.MachineID] = append(ix.byMachine[d.MachineID], dd)
		}
	}
	sortDeployments(ix.unknown)
	for _, ds := range ix.byMachine {
		sortDeployments(ds)
	}
	for _, m := range cfg.IgnoredMACs {
		ix.ignored[m] = true
	}
	return ix
}

// ParseSubnet parses a CIDR prefix or a single address (as a /32 or /128).
func ParseSubnet(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q: want a CIDR prefix or an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// sortDeployments orders by the ConfigMgr precedence: required first, then
// highest priority, then newest (then id, for a stable answer).
func sortDeployments(ds []deployment) {
	slices.SortStableFunc(ds, func(a, b deployment) int {
		if a.Required != b.Required {
			if a.Required {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

// Lookup finds the machine a request names: a record matching both GUID and
// MAC, else the GUID's, else the MAC's; nil when unknown.
func (ix *Index) Lookup(mac, guid string) *model.Machine {
	var byG, byM *model.Machine
	if guid != "" {
		byG = ix.byGUID[guid]
	}
	if mac != "" {
		byM = ix.byMAC[mac]
	}
	if byG != nil {
		return byG
	}
	return byM
}

// ClientKey returns the key consumed required deployments are recorded
// under for a request, and the machine found (nil when unknown).
func (ix *Index) ClientKey(mac, guid string) (string, *model.Machine) {
	if m := ix.Lookup(mac, guid); m != nil {
		return "m:" + m.ID, m
	}
	if mac != "" {
		return "mac:" + mac, nil
	}
	if guid != "" {
		return "guid:" + guid, nil
	}
	return "", nil
}

// Ignored reports whether mac is on the ignore list.
func (ix *Index) Ignored(mac string) bool { return ix.ignored[mac] }

// Decide applies the rules. consumed maps deployment id to the time the
// client consumed that required deployment (only this client's entries
// matter); a consumption younger than repeatWindow is a repeat of the same
// boot and gets the same deployment again.
func Decide(ix *Index, req Request, consumed map[string]time.Time, repeatWindow time.Duration) Decision {
	if req.MAC != "" && ix.ignored[req.MAC] {
		return Decision{Reason: ReasonIgnored}
	}
	key, m := ix.ClientKey(req.MAC, req.GUID)
	if key == "" {
		return Decision{Reason: ReasonNoIdentity}
	}
	d := Decision{ClientKey: key}
	var candidates []deployment
	d.Reason = ReasonUnknown
	if m != nil {
		d.MachineID = m.ID
		candidates = ix.byMachine[m.ID]
		d.Reason = ReasonDeployment
	} else {
		candidates = ix.unknown
	}
	if len(candidates) == 0 {
		d.Reason = ReasonNoDeployment
		return d
	}
	sawConsumed, sawArch := false, false
	for _, c := range candidates {
		if len(c.prefixes) > 0 && !inAny(c.prefixes, req.Subnet) {
			continue
		}
		if !req.Arch.CanBoot(c.image.Arch) {
			sawArch = true
			continue
		}
		repeat := false
		if c.Required {
			if at, ok := consumed[c.ID]; ok {
				if age := max(req.Now.Sub(at), 0); age >= repeatWindow {
					sawConsumed = true
					continue
				}
				repeat = true
			}
		}
		d.Boot, d.ImageID, d.ImageArch, d.Required, d.DeploymentID, d.Repeat = true, c.ImageID, c.image.Arch, c.Required, c.ID, repeat
		return d
	}
	switch {
	case sawConsumed:
		d.Reason = ReasonConsumed
	case sawArch:
		d.Reason = ReasonNoArch
	default:
		d.Reason = ReasonNoDeployment
	}
	return d
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
