package tftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	codec "github.com/peerboot/peerboot/codec/tftp"
)

var (
	errTooLarge = errors.New("upload exceeds the size limit")
	errBadBlock = errors.New("DATA block larger than the negotiated blksize")
)

// receiveUpload runs a write transfer: it acknowledges the request (OACK
// or ACK 0), then receives DATA in order, acknowledging every windowsize
// blocks (RFC 7440), at once on a gap or a duplicate, and after a timeout.
// The file is committed before the final ACK, so a client that saw its
// last block acknowledged knows the file is stored.
func (s *session) receiveUpload(ctx context.Context) (err error) {
	committed := false
	defer func() {
		if !committed {
			s.upload.Abort()
		}
	}()
	w := bufio.NewWriterSize(s.upload, 256<<10)
	var ack [4]byte
	control := s.oack
	if control == nil {
		control = codec.AppendAck(ack[:0], 0)
	}
	send := func(b []byte) error {
		s.stats.SentBytes += int64(len(b))
		return s.write(b)
	}
	if err := send(control); err != nil {
		return err
	}
	expected := int64(1) // next block
	sinceAck := 0
	timeouts := 0
	reported := false // the current gap or duplicate run was answered
	var reportedAt time.Time
	var stored int64
	for {
		pkt, err := s.recv(ctx, time.Now().Add(s.timeout))
		if err != nil {
			return err
		}
		if pkt == nil {
			timeouts++
			s.stats.Timeouts++
			if timeouts > s.srv.cfg.Retries {
				return fmt.Errorf("%w: no DATA after block %d after %d retries", errTimeout, expected-1, timeouts-1)
			}
			if expected == 1 {
				err = send(control) // the OACK or ACK 0 was lost
			} else {
				err = send(codec.AppendAck(ack[:0], uint16(expected-1)))
			}
			if err != nil {
				return err
			}
			continue
		}
		op, err := codec.PacketOpcode(pkt)
		if err != nil {
			s.srv.malformed.Add(1)
			continue
		}
		if op == codec.OpERROR {
			e, perr := codec.ParseError(pkt)
			if perr != nil {
				return fmt.Errorf("%w (malformed)", errClientError)
			}
			return fmt.Errorf("%w %d: %s", errClientError, e.Code, e.Message)
		}
		if op != codec.OpDATA {
			s.srv.malformed.Add(1)
			continue
		}
		d, err := codec.ParseData(pkt)
		if err != nil {
			s.srv.malformed.Add(1)
			continue
		}
		delta := d.Block - uint16(expected) // block numbers roll over
		switch {
		case delta == 0:
			if len(d.Payload) > s.blksize {
				return fmt.Errorf("%w: block %d has %d bytes", errBadBlock, expected, len(d.Payload))
			}
			if stored+int64(len(d.Payload)) > s.srv.cfg.MaxUploadSize {
				return fmt.Errorf("%w (%d bytes)", errTooLarge, s.srv.cfg.MaxUploadSize)
			}
			if _, err := w.Write(d.Payload); err != nil {
				return fmt.Errorf("write %s: %w", s.stats.File, err)
			}
			stored += int64(len(d.Payload))
			s.stats.Bytes = stored
			timeouts, reported = 0, false
			expected++
			sinceAck++
			if len(d.Payload) < s.blksize {
				if err := w.Flush(); err != nil {
					return fmt.Errorf("write %s: %w", s.stats.File, err)
				}
				if err := s.upload.Commit(); err != nil {
					return err
				}
				committed = true
				s.stats.Size = stored
				return send(codec.AppendAck(ack[:0], uint16(expected-1)))
			}
			if sinceAck >= s.window {
				sinceAck = 0
				if err := send(codec.AppendAck(ack[:0], uint16(expected-1))); err != nil {
					return err
				}
			}
		default:
			// A later block (one was lost) or an earlier one (our ACK was
			// lost): say once where the stream stands; the sender restarts
			// its window after that block.
			if delta >= 0x8000 {
				s.stats.Retransmits++
			}
			if !reported || time.Since(reportedAt) >= reAckInterval {
				reported, reportedAt = true, time.Now()
				sinceAck = 0
				if err := send(codec.AppendAck(ack[:0], uint16(expected-1))); err != nil {
					return err
				}
			}
		}
	}
}

// dallyUpload answers a resent final block with the final ACK until the
// client has been quiet for one timeout (RFC 1350 section 6: the final ACK
// may be lost).
// reAckInterval is how long after reporting a gap or a duplicate the
// receiver reports again if the sender keeps resending (the report was
// lost): shorter than any sender's timeout, longer than one burst.
const reAckInterval = 10 * time.Millisecond

func (s *session) dallyUpload(ctx context.Context) {
	final := uint16(s.stats.Bytes/int64(s.blksize) + 1)
	var ack [4]byte
	deadline := time.Now().Add(s.timeout)
	for {
		pkt, err := s.recv(ctx, deadline)
		if err != nil || pkt == nil {
			return
		}
		if d, err := codec.ParseData(pkt); err == nil && d.Block == final {
			s.write(codec.AppendAck(ack[:0], final))
		}
	}
}
