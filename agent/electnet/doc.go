// Package electnet carries the subnet election over UDP broadcast: one
// socket per agent bound to the election port on the served interface,
// sending to the subnet's broadcast address. It implements the election's
// Transport and Receiver.
//
// electnet must never import the election's logic beyond its interfaces, nor
// the PXE server or Central.
package electnet
