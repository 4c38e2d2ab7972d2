package spool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peerboot/peerboot/central/model"
)

// Defaults.
const (
	DefaultSegmentBytes = 4 << 20
	DefaultBatch        = 500
)

// Spool is an on-disk event queue. Append and Run may be called from
// different goroutines.
type Spool struct {
	dir          string
	segmentBytes int64
	log          *slog.Logger

	mu      sync.Mutex
	seg     uint64 // segment being appended to
	f       *os.File
	size    int64
	pending int // appended and not yet acknowledged (approximate after a restart: counted on open)
	wake    chan struct{}

	sent     uint64
	appended uint64
}

// cursor is the position up to which Central has every event.
type cursor struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Open opens (creating) a spool in dir.
func Open(dir string, log *slog.Logger) (*Spool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, segmentBytes: DefaultSegmentBytes, log: log, wake: make(chan struct{}, 1)}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		s.seg = segs[len(segs)-1]
		if err := truncateTorn(s.segName(s.seg)); err != nil {
			return nil, err
		}
	} else {
		s.seg = 1
	}
	if err := s.openSegment(); err != nil {
		return nil, err
	}
	cur, err := s.readCursor()
	if err != nil {
		return nil, err
	}
	n, _, err := s.read(cur, 1<<30)
	if err != nil {
		s.f.Close()
		return nil, err
	}
	s.pending = len(n)
	return s, nil
}

// SetSegmentBytes changes the size at which a new segment starts (tests).
func (s *Spool) SetSegmentBytes(n int64) { s.segmentBytes = n }

func (s *Spool) segName(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%016d.log", n))
}

func (s *Spool) segments() ([]uint64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 10, 64)
		if err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func (s *Spool) openSegment() error {
	f, err := os.OpenFile(s.segName(s.seg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.f, s.size = f, st.Size()
	if err := syncDir(s.dir); err != nil {
		return err
	}
	return nil
}

// Append stores events durably (fsync'd) before returning. Events without
// an id get one.
func (s *Spool) Append(evs ...model.Event) error {
	var buf bytes.Buffer
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = model.NewID("ev-")
		}
		rec, err := EncodeRecord(evs[i])
		if err != nil {
			return fmt.Errorf("spool: encode event: %w", err)
		}
		buf.Write(rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("spool: closed")
	}
	if s.size > 0 && s.size+int64(buf.Len()) > s.segmentBytes {
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.seg++
		if err := s.openSegment(); err != nil {
			s.f = nil
			return err
		}
	}
	n, err := s.f.Write(buf.Bytes())
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("spool: append: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.pending += len(evs)
	s.appended += uint64(len(evs))
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Kick makes Run try again now (e.g. when Central is back).
func (s *Spool) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Pending is the number of events not yet acknowledged by Central.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Counts returns events appended and sent since Open.
func (s *Spool) Counts() (appended, sent uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended, s.sent
}

func (s *Spool) readCursor() (cursor, error) {
	var c cursor
	b, err := os.ReadFile(filepath.Join(s.dir, "cursor"))
	if errors.Is(err, os.ErrNotExist) {
		return cursor{Segment: 0}, nil
	}
	if err != nil {
		return c, fmt.Errorf("spool: cursor: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("spool: cursor is corrupt: %w", err)
	}
	return c, nil
}

func (s *Spool) writeCursor(c cursor) error {
	b, _ := json.Marshal(c)
	tmp := filepath.Join(s.dir, "cursor.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "cursor")); err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	return syncDir(s.dir)
}

// read returns up to max events after cur and the cursor just past them.
// A torn last record (a crash inside an append that never returned) ends
// the segment.
func (s *Spool) read(cur cursor, max int) ([]model.Event, cursor, error) {
	segs, err := s.segments()
	if err != nil {
		return nil, cur, err
	}
	var out []model.Event
	for _, n := range segs {
		if n < cur.Segment {
			continue
		}
		off := int64(0)
		if n == cur.Segment {
			off = cur.Offset
		}
		f, err := os.Open(s.segName(n))
		if err != nil {
			return nil, cur, fmt.Errorf("spool: %w", err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, cur, fmt.Errorf("spool: %w", err)
		}
		br := bufio.NewReader(f)
		for len(out) < max {
			line, err := br.ReadBytes('\n')
			if err != nil {
				break // end of segment, or a torn record
			}
			ev, ok := decodeRecord(line)
			off += int64(len(line))
			if !ok {
				s.log.Warn("spool: skipping a corrupt record", "segment", n, "offset", off-int64(len(line)))
				continue
			}
			out = append(out, ev)
		}
		f.Close()
		cur = cursor{Segment: n, Offset: off}
		if len(out) >= max {
			break
		}
	}
	return out, cur, nil
}

// EncodeRecord writes one event as a spool record: the CRC-32 of its JSON
// in hex, a space, the JSON and a newline.
func EncodeRecord(ev model.Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "%08x %s\n", crc32.ChecksumIEEE(b), b), nil
}

// DecodeRecord reads one spool record; ok is false for a torn or corrupt one.
func DecodeRecord(line []byte) (model.Event, bool) { return decodeRecord(line) }

func decodeRecord(line []byte) (model.Event, bool) {
	var ev model.Event
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) < 10 || line[8] != ' ' {
		return ev, false
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(line[9:]) {
		return ev, false
	}
	if json.Unmarshal(line[9:], &ev) != nil {
		return ev, false
	}
	return ev, true
}

// Send delivers one batch of events; it returns nil only once Central has
// stored every one of them (duplicates count as stored).
type Send func(ctx context.Context, evs []model.Event) error

// Flush sends everything pending, batch by batch, and returns the first
// error (the events stay queued).
func (s *Spool) Flush(ctx context.Context, send Send) error {
	for {
		cur, err := s.readCursor()
		if err != nil {
			return err
		}
		evs, next, err := s.read(cur, DefaultBatch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			if next != cur {
				if err := s.writeCursor(next); err != nil {
					return err
				}
			}
			return s.dropAcked(next)
		}
		if err := send(ctx, evs); err != nil {
			return err
		}
		if err := s.writeCursor(next); err != nil {
			return err
		}
		s.mu.Lock()
		s.pending -= len(evs)
		if s.pending < 0 {
			s.pending = 0
		}
		s.sent += uint64(len(evs))
		s.mu.Unlock()
	}
}

// dropAcked removes segments entirely before the cursor.
func (s *Spool) dropAcked(cur cursor) error {
	segs, err := s.segments()
	if err != nil {
		return err
	}
	for _, n := range segs {
		if n < cur.Segment {
			if err := os.Remove(s.segName(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	return nil
}

// Run flushes whenever events are appended, and retries failures with
// backoff (from retry up to 15s; Kick retries at once), until ctx ends.
func (s *Spool) Run(ctx context.Context, send Send, retry time.Duration) {
	if retry <= 0 {
		retry = time.Second
	}
	backoff := retry
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		if err := s.Flush(ctx, send); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("spool: events kept for later", "pending", s.Pending(), "err", err)
			t.Reset(backoff)
			backoff = min(2*backoff, 15*time.Second)
			continue
		}
		backoff = retry
		t.Reset(30 * time.Second)
	}
}

// Close closes the segment being appended to.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync dir: %w", err)
	}
	return nil
}

// truncateTorn cuts a torn last record (a crash inside an append that never
// returned) so the next append starts on a line of its own.
func truncateTorn(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	keep := bytes.LastIndexByte(b, '\n') + 1
	if keep == len(b) {
		return nil
	}
	if err := os.Truncate(path, int64(keep)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
