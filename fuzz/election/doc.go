// Package election holds the fuzz targets of the subnet election: the
// message decoder (whole datagrams, and message bodies wrapped in a valid
// header and HMAC so the fuzzer reaches the body parser) and the Elector
// state machine fed with arbitrary authenticated messages and requests.
// The seed corpus is a capture of a real election (testdata/election.pcap,
// three agents and a wrong-key intruder on a netlab bridge, UDP 2012).
//
// It has no non-test code and must never be imported.
package election
