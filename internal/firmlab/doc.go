// Package firmlab is a test harness that PXE-boots real firmware under
// QEMU (software emulation) on a netlab subnet: OVMF (UEFI x64 with its own
// PXE stack on virtio-net) and SeaBIOS with the iPXE ROM of an e1000 NIC.
// It starts a plain DHCP server that hands out addresses only (dnsmasq or
// ISC dhcpd), captures the subnet with tcpdump on the lab bridge, and reads
// back from the capture which files each guest fetched by TFTP.
//
// Every process it starts is bounded by a context and killed by PID on
// Close, and every namespace it makes is removed, even when a test fails.
// Addresses come only from 198.18.0.0/15 (netlab enforces it).
//
// firmlab is for tests and benchmarks: production packages must never
// import it. It must not import the packages it tests (pxe, engine, tftp).
package firmlab
