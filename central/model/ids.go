package model

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// NormalizeMAC parses an Ethernet MAC in any common notation
// (aa:bb:.., aa-bb-.., aabb.ccdd.eeff, aabbccddeeff) and returns it as
// lower-case colon-separated hex.
func NormalizeMAC(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) == 12 && !strings.ContainsAny(s, ":-.") {
		b, err := hex.DecodeString(s)
		if err != nil {
			return "", fmt.Errorf("mac %q: not hex", s)
		}
		return net.HardwareAddr(b).String(), nil
	}
	hw, err := net.ParseMAC(s)
	if err != nil {
		return "", fmt.Errorf("mac %q: %w", s, err)
	}
	if len(hw) != 6 {
		return "", fmt.Errorf("mac %q: want 6 bytes, got %d", s, len(hw))
	}
	return hw.String(), nil
}

// NormalizeGUID parses an SMBIOS UUID (with or without dashes or braces)
// and returns it lower-case in 8-4-4-4-12 form. usable is false for the
// all-zero and all-FF values firmware reports when it has no real UUID;
// such GUIDs must not identify a machine.
func NormalizeGUID(s string) (guid string, usable bool, err error) {
	t := strings.Trim(strings.TrimSpace(s), "{}")
	t = strings.ReplaceAll(t, "-", "")
	if len(t) != 32 {
		return "", false, fmt.Errorf("guid %q: want 32 hex digits", s)
	}
	b, err := hex.DecodeString(t)
	if err != nil {
		return "", false, fmt.Errorf("guid %q: not hex", s)
	}
	allZero, allFF := true, true
	for _, c := range b {
		allZero = allZero && c == 0
		allFF = allFF && c == 0xff
	}
	h := hex.EncodeToString(b)
	out := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	return out, !allZero && !allFF, nil
}

// NormalizeSHA256 checks a hex SHA-256 digest and returns it lower-case.
func NormalizeSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 64 {
		return "", fmt.Errorf("sha256 %q: want 64 hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("sha256 %q: not hex", s)
	}
	return s, nil
}

// NewID returns a random identifier with the given prefix.
func NewID(prefix string) string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("model: crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

// ValidID reports whether s is usable as an identifier chosen by a user:
// 1-64 characters of letters, digits, '-', '_' and '.', not starting with '.'.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
