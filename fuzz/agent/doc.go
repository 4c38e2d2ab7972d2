// Package agent holds the fuzz targets of the agent's own decoders: the
// event spool's records (read back from disk after crashes) and the
// configuration file parser. The seed corpus runs as normal tests.
//
// It must only import the packages it fuzzes and the standard library.
package agent
