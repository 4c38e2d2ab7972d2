package pxe

import (
	"testing"
	"time"
)

// TestScratchPoolWaitsWhenEveryScratchIsTaken: with every scratch held
// (handlers blocked in a Decider), another caller waits until one is put
// back and then gets that one; nobody ever shares a scratch.
func TestScratchPoolWaitsWhenEveryScratchIsTaken(t *testing.T) {
	var p scratchPool
	p.init(2)
	a, b := p.get(), p.get()
	if a == nil || b == nil || a == b {
		t.Fatalf("two gets returned %p and %p", a, b)
	}
	got := make(chan *scratch, 1)
	go func() { got <- p.get() }()
	deadline := time.Now().Add(10 * time.Second)
	for p.waiters.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("third get neither waited nor returned")
		}
		select {
		case sc := <-got:
			t.Fatalf("third get returned %p while both scratches were taken", sc)
		default:
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
	}
	select {
	case sc := <-got:
		t.Fatalf("third get returned %p while both scratches were taken", sc)
	default:
	}
	p.put(b)
	select {
	case sc := <-got:
		if sc != b {
			t.Fatalf("waiting get returned %p, want the freed %p", sc, b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting get not woken when a scratch was put back")
	}
	p.put(a)
	if sc := p.tryGet(); sc != a {
		t.Fatalf("tryGet after put = %p, want %p", sc, a)
	}
}
