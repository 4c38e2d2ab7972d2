// Package decide holds the boot decision rules Central and agents share: given
// the deployments, machines, images and ignore list (an Index) and the
// required deployments a client already consumed, it says which boot image a
// PXE client gets, if any. The rules are those of Configuration Manager:
//
//   - ignored MACs get nothing;
//   - the client is looked up by SMBIOS GUID and/or MAC (a record matching
//     both wins, then the GUID, then the MAC); all-zero and all-FF GUIDs are
//     ignored;
//   - a known machine gets its own deployments; an unknown one gets the
//     "unknown computers" deployments, if any;
//   - UEFI clients need an image of exactly their architecture; BIOS x64
//     clients may also use an x86 image;
//   - required deployments come before available ones, then the highest
//     priority, then the newest;
//   - a required deployment runs once: once consumed it is not offered again
//     until an administrator clears it (a repeat of the same boot within a
//     short window gets the same answer, so PXE retries do not lose it).
//
// The package is pure: no I/O, no clock (the caller passes the time), no
// imports beyond the standard library and central/model.
package decide
