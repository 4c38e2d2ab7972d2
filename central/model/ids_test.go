package model

import "testing"

func TestNormalizeMAC(t *testing.T) {
	for in, want := range map[string]string{
		"02:00:00:AA:bb:01": "02:00:00:aa:bb:01",
		"02-00-00-aa-bb-01": "02:00:00:aa:bb:01",
		"0200.00aa.bb01":    "02:00:00:aa:bb:01",
		"020000AABB01":      "02:00:00:aa:bb:01",
	} {
		got, err := NormalizeMAC(in)
		if err != nil || got != want {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "02:00:00:aa:bb", "zz0000aabb01", "02:00:00:00:00:00:00:01"} {
		if got, err := NormalizeMAC(bad); err == nil {
			t.Errorf("NormalizeMAC(%q) = %q, want error", bad, got)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{"PB100001": true, "a.b-c_d": true, "": false, ".hidden": false, "a/b": false, "a b": false} {
		if ValidID(s) != want {
			t.Errorf("ValidID(%q) = %v", s, !want)
		}
	}
}
