package parallel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPieces checks that Pieces covers every item once, runs pieces on
// several workers at once, and returns the error of the first failing
// piece in order whatever the workers' timing, with every earlier piece
// done and no piece after the failure started once it is known.
func TestPieces(t *testing.T) {
	for _, workers := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(workers, " workers"), func(t *testing.T) {
			var mu sync.Mutex
			seen := make([]int, 23)
			var running, most atomic.Int32
			err := Pieces(context.Background(), workers, len(seen), 4, func(_ context.Context, w, lo, hi int) error {
				if w < 0 || w >= workers {
					t.Errorf("worker %d of %d", w, workers)
				}
				most.Store(max(most.Load(), running.Add(1)))
				time.Sleep(2 * time.Millisecond)
				running.Add(-1)
				mu.Lock()
				defer mu.Unlock()
				for i := lo; i < hi; i++ {
					seen[i]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range seen {
				if k != 1 {
					t.Errorf("item %d done %d times", i, k)
				}
			}
			if workers > 1 && most.Load() < 2 {
				t.Errorf("at most %d pieces ran at once on %d workers", most.Load(), workers)
			}

			// Pieces 2 and 5 fail; 5 fails at once, 2 late, so that with
			// several workers 5's error comes first in time.
			errAt := map[int]error{2: errors.New("piece 2"), 5: errors.New("piece 5")}
			var done []int
			err = Pieces(context.Background(), workers, 40, 4, func(_ context.Context, _, lo, _ int) error {
				p := lo / 4
				if p == 2 {
					time.Sleep(20 * time.Millisecond)
				}
				if e := errAt[p]; e != nil {
					return e
				}
				mu.Lock()
				done = append(done, p)
				mu.Unlock()
				return nil
			})
			if err != errAt[2] {
				t.Errorf("error %v; want piece 2's", err)
			}
			slices.Sort(done)
			if len(done) < 2 || done[0] != 0 || done[1] != 1 {
				t.Errorf("pieces %v done; want 0 and 1 among them", done)
			}
			if done[len(done)-1] > 2+workers {
				t.Errorf("pieces %v done: pieces far beyond the failed piece 2 started", done)
			}
		})
	}
}

// TestSpreadCancels checks that a failing worker cancels the others.
func TestSpreadCancels(t *testing.T) {
	boom := errors.New("boom")
	err := Spread(context.Background(), 3, 10, func(ctx context.Context, w int) error {
		if w == 1 {
			return boom
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("not cancelled")
		}
	})
	if err != boom {
		t.Errorf("error %v; want %v", err, boom)
	}
}
