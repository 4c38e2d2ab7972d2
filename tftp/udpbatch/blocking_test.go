package udpbatch

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	var s Slots
	if !s.TryTake(2) || !s.TryTake(2) {
		t.Fatal("two slots of 2 not granted")
	}
	if s.TryTake(2) {
		t.Fatal("a third slot of 2 granted")
	}
	if s.Taken() != 2 {
		t.Fatalf("Taken() = %d after a refused take, want 2", s.Taken())
	}
	s.Release()
	if !s.TryTake(2) {
		t.Fatal("a released slot was not granted again")
	}
	if s.TryTake(0) || s.TryTake(-1) {
		t.Fatal("a slot granted with limit 0 or below")
	}
	s.Release()
	s.Release()
	if s.Taken() != 0 {
		t.Fatalf("Taken() = %d after releasing every slot, want 0", s.Taken())
	}
}

func TestWaitUntil(t *testing.T) {
	errRead := errors.New("read failed")
	far := time.Now().Add(time.Hour)

	t.Run("result", func(t *testing.T) {
		calls := 0
		err := WaitUntil(context.Background(), far, func(time.Duration) error {
			calls++
			if calls < 3 {
				return os.ErrDeadlineExceeded // a slice ran out: wait again
			}
			return errRead
		})
		if err != errRead || calls != 3 {
			t.Fatalf("err %v after %d reads, want %v after 3", err, calls, errRead)
		}
	})
	t.Run("slices", func(t *testing.T) {
		var longest time.Duration
		err := WaitUntil(context.Background(), far, func(d time.Duration) error {
			longest = max(longest, d)
			return nil
		})
		if err != nil || longest != MaxBlockingWait {
			t.Fatalf("err %v, read waited %v, want nil and %v", err, longest, MaxBlockingWait)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		calls := 0
		err := WaitUntil(context.Background(), time.Now().Add(-time.Second), func(time.Duration) error { calls++; return nil })
		if !errors.Is(err, os.ErrDeadlineExceeded) || calls != 0 {
			t.Fatalf("past deadline: err %v after %d reads, want os.ErrDeadlineExceeded after 0", err, calls)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := WaitUntil(ctx, far, func(time.Duration) error {
			calls++
			if calls == 2 {
				cancel()
			}
			return os.ErrDeadlineExceeded
		})
		if err != context.Canceled || calls != 2 {
			t.Fatalf("err %v after %d reads, want context.Canceled after 2", err, calls)
		}
	})
}
