package pxe

import (
	"fmt"
	"strings"
)

// Arch is a client system architecture type from DHCP option 93 (RFC 4578
// and the IANA "Processor Architecture Types" registry).
type Arch uint16

// The architectures a PXE boot server meets in practice.
const (
	ArchBIOS         Arch = 0  // Intel x86PC (legacy BIOS)
	ArchEFIIA32      Arch = 6  // EFI IA32
	ArchEFIBC        Arch = 7  // EFI BC (x64 firmware such as OVMF and most PCs)
	ArchEFIx64       Arch = 9  // EFI x86-64
	ArchEFIARM32     Arch = 10 // ARM 32-bit UEFI
	ArchEFIARM64     Arch = 11 // ARM 64-bit UEFI
	ArchHTTPEFIIA32  Arch = 15 // x86 UEFI HTTP boot
	ArchHTTPEFIx64   Arch = 16 // x64 UEFI HTTP boot
	ArchHTTPEFIARM32 Arch = 18 // ARM 32-bit UEFI HTTP boot
	ArchHTTPEFIARM64 Arch = 19 // ARM 64-bit UEFI HTTP boot
)

// Class groups architectures that boot the same program. The boot table
// is indexed by class.
type Class uint8

// Boot classes, in the order of the boot table.
const (
	ClassUnknown Class = iota
	ClassBIOS
	ClassEFI32
	ClassEFI64
	ClassARM32
	ClassARM64
	ClassHTTPEFI32
	ClassHTTPEFI64
	ClassHTTPARM32
	ClassHTTPARM64
	numClasses
)

var classNames = [numClasses]string{
	ClassUnknown:   "unknown",
	ClassBIOS:      "bios",
	ClassEFI32:     "efi32",
	ClassEFI64:     "efi64",
	ClassARM32:     "arm32",
	ClassARM64:     "arm64",
	ClassHTTPEFI32: "http-efi32",
	ClassHTTPEFI64: "http-efi64",
	ClassHTTPARM32: "http-arm32",
	ClassHTTPARM64: "http-arm64",
}

// String returns the configuration name of the class (bios, efi64, ...).
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// HTTP reports whether clients of the class boot by UEFI HTTP boot: their
// boot file is a URL and the reply carries "HTTPClient" in option 60.
func (c Class) HTTP() bool { return c >= ClassHTTPEFI32 && c <= ClassHTTPARM64 }

// ClassNames lists every configurable class name, for help texts.
func ClassNames() []string {
	out := make([]string, 0, numClasses-1)
	for c := ClassBIOS; c < numClasses; c++ {
		out = append(out, c.String())
	}
	return out
}

// ParseClass parses a configuration name such as "bios" or "efi64".
func ParseClass(name string) (Class, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for c := ClassBIOS; c < numClasses; c++ {
		if classNames[c] == n {
			return c, nil
		}
	}
	return ClassUnknown, fmt.Errorf("unknown architecture %q (want one of %s)", name, strings.Join(ClassNames(), ", "))
}

// ClassOf maps an option 93 architecture type to its boot class.
func ClassOf(a Arch) Class {
	switch a {
	case ArchBIOS:
		return ClassBIOS
	case ArchEFIIA32:
		return ClassEFI32
	case ArchEFIBC, ArchEFIx64:
		return ClassEFI64
	case ArchEFIARM32:
		return ClassARM32
	case ArchEFIARM64:
		return ClassARM64
	case ArchHTTPEFIIA32:
		return ClassHTTPEFI32
	case ArchHTTPEFIx64:
		return ClassHTTPEFI64
	case ArchHTTPEFIARM32:
		return ClassHTTPARM32
	case ArchHTTPEFIARM64:
		return ClassHTTPARM64
	}
	return ClassUnknown
}
