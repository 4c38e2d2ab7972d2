package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/peerboot/peerboot/central/model"
)

// central stands in for Central's idempotent event endpoint.
type central struct {
	stored   map[string]model.Event
	calls    int
	failNext int  // fail this many calls before storing
	loseAck  bool // store, then fail (the answer got lost)
}

func (c *central) send(_ context.Context, evs []model.Event) error {
	c.calls++
	if c.failNext > 0 {
		c.failNext--
		return errors.New("central unreachable")
	}
	for _, e := range evs {
		c.stored[e.ID] = e
	}
	if c.loseAck {
		c.loseAck = false
		return errors.New("connection reset after the batch was stored")
	}
	return nil
}

func events(n int, tag string) []model.Event {
	out := make([]model.Event, n)
	for i := range out {
		out[i] = model.Event{Type: model.EventPXEDecision, MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), Subnet: tag}
	}
	return out
}

func TestNothingLostNothingDuplicatedAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	c := &central{stored: map[string]model.Event{}, failNext: 1}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetSegmentBytes(2048) // many segments
	for i := 0; i < 10; i++ {
		if err := s.Append(events(30, fmt.Sprint(i))...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background(), c.send); err == nil {
		t.Fatal("flush with Central down reported success")
	}
	if got := s.Pending(); got != 300 {
		t.Fatalf("pending = %d, want 300", got)
	}
	// Restart: everything is still there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetSegmentBytes(2048)
	if got := s.Pending(); got != 300 {
		t.Fatalf("pending after restart = %d, want 300", got)
	}
	// Central stores the first batch but the answer is lost: the retry
	// resends the same ids.
	c.loseAck = true
	if err := s.Flush(context.Background(), c.send); err == nil {
		t.Fatal("lost answer reported as success")
	}
	if err := s.Append(events(5, "late")...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background(), c.send); err != nil {
		t.Fatal(err)
	}
	if len(c.stored) != 305 {
		t.Fatalf("Central holds %d distinct events, want 305", len(c.stored))
	}
	if s.Pending() != 0 {
		t.Fatalf("pending = %d after a full flush", s.Pending())
	}
	// Acknowledged segments are removed (only the open one may remain).
	segs, _ := s.segments()
	if len(segs) > 2 {
		t.Errorf("%d segments left after everything was acknowledged", len(segs))
	}
	// A restart after the flush sends nothing again.
	s.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := c.calls
	if err := s.Flush(context.Background(), c.send); err != nil {
		t.Fatal(err)
	}
	if c.calls != calls {
		t.Errorf("restart resent acknowledged events (%d calls)", c.calls-calls)
	}
	s.Close()
}

func TestTornRecordIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(events(3, "x")...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash in the middle of a write leaves half a record.
	f, err := os.OpenFile(filepath.Join(dir, "seg-0000000000000001.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`0badc0de {"id":"ev-torn`)
	f.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(events(2, "after")...); err != nil {
		t.Fatal(err)
	}
	c := &central{stored: map[string]model.Event{}}
	if err := s.Flush(context.Background(), c.send); err != nil {
		t.Fatal(err)
	}
	if len(c.stored) != 5 {
		t.Fatalf("stored %d, want the 3 whole events and the 2 appended after the restart", len(c.stored))
	}
	for id := range c.stored {
		if id == "ev-torn" {
			t.Fatal("torn record was sent")
		}
	}
	s.Close()
}

func TestCorruptRecordIsSkippedNotFatal(t *testing.T) {
	rec := []byte("00000000 {\"id\":\"a\"}\n")
	if _, ok := decodeRecord(rec); ok {
		t.Fatal("record with a wrong checksum accepted")
	}
	if _, ok := decodeRecord([]byte("short\n")); ok {
		t.Fatal("short record accepted")
	}
}
