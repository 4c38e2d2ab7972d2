// Package client is the Go client agents (and tools) use to talk to
// Central: enroll, heartbeat, ask for a boot decision, fetch the decision set
// with ETag and long-poll, post idempotent event batches (retried safely),
// and download boot image files with HTTP range resume and SHA-256
// verification.
//
// client speaks HTTP only; it must not import a store.
package client
