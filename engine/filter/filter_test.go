package filter

import "testing"

func TestClassicPortCount(t *testing.T) {
	if _, err := Classic(nil); err == nil {
		t.Error("no ports accepted")
	}
	many := make([]uint16, 201)
	if _, err := Classic(many); err == nil {
		t.Error("201 ports accepted")
	}
	raw, err := Classic([]uint16{67, 4011, 2067})
	if err != nil {
		t.Fatal(err)
	}
	// 10 header instructions, one jump per port, drop and accept.
	if len(raw) != 10+3+2 {
		t.Errorf("%d instructions, want 15", len(raw))
	}
}

func TestForceClassic(t *testing.T) {
	f, err := New([]uint16{67, 67, 4011}, Options{ForceClassic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Mode() != ModeClassic || f.EBPFError() == nil {
		t.Errorf("mode %v, eBPF error %v; want classic with a reason", f.Mode(), f.EBPFError())
	}
	if got := f.Ports(); len(got) != 2 || got[0] != 67 || got[1] != 4011 {
		t.Errorf("ports = %v, want [67 4011]", got)
	}
	if f.Filtered() != 0 {
		t.Error("classic filter reports drops")
	}
}
