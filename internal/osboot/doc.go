// Package osboot builds the artefacts a guest needs to network-boot a real
// operating system through peerboot, for the end-to-end tests: the iPXE
// network boot programs from Debian's ipxe package (ipxe.efi for UEFI x64,
// undionly.kpxe for BIOS PXE ROMs), a Linux kernel unpacked from Debian's
// kernel package without installing it (scripts/fetch-test-kernel.sh), an
// initramfs written here around busybox-static whose /init prints a marker
// on the serial console and powers the machine off, and the iPXE script
// that loads kernel and initramfs over TFTP.
//
// A test reads the marker (Marker) from the guest's serial console: only a
// kernel that booted and ran the initramfs prints it.
//
// osboot is for tests and the demo: production packages must never import
// it, and it must not import the packages under test (pxe, engine, tftp,
// agent, central).
package osboot
