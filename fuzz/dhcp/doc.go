// Package dhcp holds the Go fuzz targets of codec/dhcp: FuzzDecode (decoding
// and every accessor must never panic) and FuzzDecodeEncode (decode, encode
// and decode again must agree, and a reply built from any decodable request
// must itself decode). The seed corpus in testdata/seeds comes from real
// firmware PXE captures and builder outputs, and runs in every `go test`.
//
// It is test-only code: it must not import I/O beyond reading its seeds.
package dhcp
