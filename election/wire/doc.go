// Package wire is the binary codec of the subnet election messages sent on
// UDP 2012: heartbeats (membership and load), claims (an agent answers a
// client) and handoffs (a client and Central's answer passed to an agent
// that holds the boot image). Every message carries a version byte, the
// subnet id, the sender, a timestamp and a nonce, and ends with an
// HMAC-SHA256 over everything before it under the site key.
//
// wire only encodes, decodes and authenticates; it keeps no state (the
// replay window lives in package election). It must never import the
// election state machine, the pxe package, Central or the packet codecs.
package wire
