package election

import "testing"

func TestReplayWindow(t *testing.T) {
	tests := []struct {
		name  string
		seq   []uint64
		wants []bool
	}{
		{"in order", []uint64{5, 6, 7}, []bool{true, true, true}},
		{"duplicate", []uint64{5, 5}, []bool{true, false}},
		{"reordered within window", []uint64{10, 8, 9, 8, 10}, []bool{true, true, true, false, false}},
		{"too old", []uint64{1000, 1000 - replayWindowSize}, []bool{true, false}},
		{"edge of window", []uint64{1000, 1000 - replayWindowSize + 1, 1000 - replayWindowSize + 1}, []bool{true, true, false}},
		{"big jump clears", []uint64{1, 2, 500, 2, 499, 499}, []bool{true, true, true, false, true, false}},
		{"cross word shift", []uint64{100, 30, 165, 30, 101, 100}, []bool{true, true, true, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r replayState
			for i, n := range tt.seq {
				if got := r.accept(n); got != tt.wants[i] {
					t.Fatalf("accept(%d) (step %d) = %v, want %v", n, i, got, tt.wants[i])
				}
			}
		})
	}
}
