package tftp

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
	"github.com/peerboot/peerboot/tftp/udpbatch"
)

// Config configures a Server. The zero value of every limit means its
// default.
type Config struct {
	// Source serves the files. Required.
	Source FileSource
	// MaxBlksize caps the negotiated block size (default and upper bound
	// 65464). The block size is also clamped, once per transfer, to the
	// path MTU towards the client minus 32 unless IgnorePathMTU is set.
	MaxBlksize    int
	IgnorePathMTU bool
	// MaxWindowsize caps RFC 7440 windowsize (default 64).
	MaxWindowsize int
	// MaxWindowBytes bounds one session's window buffer (default 1 MiB):
	// the granted windowsize is lowered so windowsize*blksize fits.
	MaxWindowBytes int
	// Timeout is the retransmission timeout when the client does not ask
	// for one (default 1s); Retries the number of full-timeout
	// retransmissions without progress before giving up (default 5).
	Timeout time.Duration
	Retries int
	// MaxSessions limits concurrent transfers (default 4096); beyond it
	// requests get ERROR 0 "server busy".
	MaxSessions int
	// SinglePort answers from the listening socket instead of a new port
	// per transfer (for NAT and containers).
	SinglePort bool
	// Uploads, when set, accepts write requests: each creates a new file
	// through it (an existing name is refused with ERROR 6). When nil,
	// every write request is refused with ERROR 2. DirSource is a sink
	// that writes under the same root as it reads from.
	Uploads FileSink
	// MaxUploadSize bounds one upload (default 64 MiB): a larger tsize is
	// refused at once, and a transfer growing past it is stopped with
	// ERROR 3 and discarded.
	MaxUploadSize int64
	// BlockingSessions is how many read transfers at a time wait for
	// their ACKs in a blocking read on a socket of their own, outside the
	// network poller (default GOMAXPROCS; negative: none). An ACK then
	// wakes the transfer's thread directly, which shortens every window's
	// round trip; each such transfer holds an OS thread while it waits, so
	// transfers beyond this count (and every upload and single-port
	// transfer) use the poller, where thousands cost no thread each.
	BlockingSessions int
	// FileLinger is how long a file stays open (and mapped) after its
	// last transfer ends, so the next request for it skips opening and
	// mapping it again and faulting its pages into the mapping (default
	// 30s; negative: close at once). A request always opens the name
	// anew and reuses the lingering file only if it is still the same
	// file (device, inode and size); a file replaced or resized on disk is
	// served fresh, and a change in place shows through the shared
	// mapping. A file removed from disk does not linger after its last
	// transfer (see Server.CloseRemovedFiles for one removed meanwhile).
	FileLinger time.Duration
	// SendMethod forces a batching method (tests); Auto detects.
	SendMethod udpbatch.Method
	// Logger receives one line per refused request and finished transfer
	// (default slog.Default()).
	Logger *slog.Logger
	// OnTransfer is called once per finished transfer, from the session's
	// goroutine.
	OnTransfer func(TransferStats)
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.Source == nil {
		return d, fmt.Errorf("tftp: Config.Source is required")
	}
	if d.MaxBlksize <= 0 || d.MaxBlksize > codec.MaxBlksize {
		d.MaxBlksize = codec.MaxBlksize
	}
	if d.MaxBlksize < codec.MinBlksize {
		d.MaxBlksize = codec.MinBlksize
	}
	if d.MaxWindowsize <= 0 {
		d.MaxWindowsize = 64
	}
	d.MaxWindowsize = min(d.MaxWindowsize, codec.MaxWindowsize)
	if d.MaxWindowBytes <= 0 {
		d.MaxWindowBytes = 1 << 20
	}
	if d.MaxUploadSize <= 0 {
		d.MaxUploadSize = 64 << 20
	}
	if d.Timeout <= 0 {
		d.Timeout = time.Second
	}
	if d.Retries <= 0 {
		d.Retries = 5
	}
	if d.MaxSessions <= 0 {
		d.MaxSessions = 4096
	}
	if d.FileLinger == 0 {
		d.FileLinger = 30 * time.Second
	}
	if d.BlockingSessions == 0 {
		d.BlockingSessions = runtime.GOMAXPROCS(0)
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d, nil
}

// Outcome is how a transfer ended.
type Outcome string

// Transfer outcomes.
const (
	OutcomeComplete    Outcome = "complete"
	OutcomeClientError Outcome = "client-error" // the client sent ERROR (e.g. after a tsize probe)
	OutcomeTimeout     Outcome = "timeout"
	OutcomeCanceled    Outcome = "canceled"
	OutcomeFailed      Outcome = "failed"  // local I/O error
	OutcomeRefused     Outcome = "refused" // an upload stopped: too large, or its name appeared meanwhile
)

// TransferStats describes one finished transfer.
type TransferStats struct {
	Client      string
	File        string
	Size        int64 // file size
	Bytes       int64 // file bytes acknowledged by the client
	SentBytes   int64 // UDP payload bytes sent, retransmissions included
	Blksize     int
	Windowsize  int
	Retransmits int64 // DATA packets sent more than once (uploads: received more than once)
	Timeouts    int64 // retransmission timer expiries
	GapRestarts int64 // windows restarted early because the client reported a gap
	Probes      int64 // windows sent ahead after repeated timeouts (see session.transfer)
	// MinWindow is the smallest burst (blocks sent before waiting for an
	// ACK) the loss control used; Windowsize when there was no loss.
	// WindowIncreases counts the additive increases of the burst after a
	// decrease (one per window acknowledged without loss).
	MinWindow       int
	WindowIncreases int64
	Duration        time.Duration
	Upload          bool // a write request: Bytes counts bytes received and stored
	Outcome         Outcome
	Err             error
}

// Counters are server-wide counts since start.
type Counters struct {
	Requests    uint64 // RRQ/WRQ received
	Malformed   uint64 // packets dropped because they did not decode
	Refused     uint64 // requests answered with an ERROR
	Busy        uint64 // requests refused because MaxSessions was reached
	Active      int64  // sessions running now
	Completed   uint64
	BytesSent   uint64 // UDP payload bytes of DATA packets
	Retransmits uint64
}
