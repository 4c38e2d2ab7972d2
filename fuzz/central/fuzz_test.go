package central

import (
	"strings"
	"testing"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
)

// FuzzMachinesCSV: any input is either rejected with an error or yields
// machines that are all valid (normalised MAC/GUID, valid id).
func FuzzMachinesCSV(f *testing.F) {
	f.Add("name,mac,guid\nPC-1,02:00:00:00:00:01,\nPC-2,,{33333333-2222-3333-4444-555555555555}\n")
	f.Add("id,mac\nx,0200.0000.0001\n")
	f.Add("mac\n\"02:00\nunterminated")
	f.Add("\ufeffMAC,Name\n02-00-00-00-00-01,a b\n")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := api.ParseMachinesCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, m := range ms {
			if !model.ValidID(m.ID) || (m.MAC == "" && m.GUID == "") {
				t.Fatalf("invalid machine accepted: %+v", m)
			}
			if m.MAC != "" {
				if n, err := model.NormalizeMAC(m.MAC); err != nil || n != m.MAC {
					t.Fatalf("MAC not normalised: %q", m.MAC)
				}
			}
			if m.GUID != "" {
				if g, usable, err := model.NormalizeGUID(m.GUID); err != nil || !usable || g != m.GUID {
					t.Fatalf("GUID not normalised or unusable: %q", m.GUID)
				}
			}
		}
	})
}

// FuzzIdentifiers: normalisers are idempotent and never panic.
func FuzzIdentifiers(f *testing.F) {
	for _, s := range []string{"02:00:00:00:00:01", "020000000001", "{ffffffff-ffff-ffff-ffff-ffffffffffff}", "uefi-x64", "0", "9", "198.18.1.0/24", "198.18.1.7", "::1/64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, err := model.NormalizeMAC(s); err == nil {
			if m2, err := model.NormalizeMAC(m); err != nil || m2 != m {
				t.Fatalf("NormalizeMAC not idempotent: %q -> %q -> %q", s, m, m2)
			}
		}
		if g, _, err := model.NormalizeGUID(s); err == nil {
			if g2, _, err := model.NormalizeGUID(g); err != nil || g2 != g {
				t.Fatalf("NormalizeGUID not idempotent: %q -> %q -> %q", s, g, g2)
			}
		}
		if a, err := decide.ParseClientArch(s); err == nil {
			if a2, err := decide.ParseClientArch(a.String()); err != nil || a2 != a {
				t.Fatalf("ParseClientArch round trip: %q -> %v -> %v", s, a, a2)
			}
		}
		if p, err := decide.ParseSubnet(s); err == nil && !p.IsValid() {
			t.Fatalf("ParseSubnet(%q) accepted an invalid prefix", s)
		}
	})
}
