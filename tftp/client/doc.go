// Package client is a TFTP read client with every option peerboot's server
// speaks (blksize, tsize, timeout, RFC 7440 windowsize), block-number
// rollover and batched receives (recvmmsg). Tests, benchmarks, the load
// generator and `peerboot tftp get` use it.
//
// It depends only on codec/tftp and tftp/udpbatch and must never import
// the server package.
package client
