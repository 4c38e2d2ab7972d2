// Package pxe holds the fuzz targets of the PXE boot server: arbitrary
// bytes handed to pxe.Server as a request on 67, 4011 or the snooping
// port, seeded with the DISCOVERs and boot-server REQUESTs of real OVMF and
// SeaBIOS+iPXE boots (testdata/seeds). The seed corpus runs as an ordinary
// test.
//
// It is test-only: nothing may import it, and it imports only the packages
// it exercises (pxe, engine, codec/dhcp).
package pxe
