// Package tftp holds the Go fuzz targets for the TFTP codec
// (codec/tftp). The seed corpus is every TFTP packet of the firmware
// captures in testdata plus hand-made edge cases, so `go test` runs the
// seeds as ordinary tests. It imports only the codec and test helpers and
// must never be imported by product code.
package tftp
