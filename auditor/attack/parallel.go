package attack

import (
	"context"
	"sync"
	"sync/atomic"
)

// spread runs work on min(c.workers, jobs) goroutines, worker w = 0, 1, …,
// and returns the first error one of them returned; the others' context is
// then cancelled. With one worker, work runs on the calling goroutine.
func (c *Classifier) spread(ctx context.Context, jobs int, work func(ctx context.Context, w int) error) error {
	n := min(c.workers, jobs)
	if n <= 1 {
		return work(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(ctx, w); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// pieces runs work on the pieces [lo, hi) of n items, size items each but
// the last, spread over the workers, each taking the next piece when it
// has finished one. It returns the error of the first failing piece in
// order, as a loop over the pieces would: after a failure no later piece
// starts, but the earlier ones running still finish.
func (c *Classifier) pieces(ctx context.Context, n, size int, work func(ctx context.Context, w, lo, hi int) error) error {
	count := (n + size - 1) / size
	var (
		next   atomic.Int64
		failed atomic.Int64 // the first failed piece, count if none
		mu     sync.Mutex
		errs   = map[int]error{}
	)
	failed.Store(int64(count))
	_ = c.spread(context.WithoutCancel(ctx), count, func(_ context.Context, w int) error {
		for {
			p := int(next.Add(1) - 1)
			if p >= count || int64(p) > failed.Load() {
				return nil
			}
			err := ctx.Err()
			if err == nil {
				lo := p * size
				err = work(ctx, w, lo, min(n, lo+size))
			}
			if err != nil {
				mu.Lock() // failed is only stored to under mu
				errs[p] = err
				if int64(p) < failed.Load() {
					failed.Store(int64(p))
				}
				mu.Unlock()
				return nil
			}
		}
	})
	if f := int(failed.Load()); f < count {
		return errs[f]
	}
	return nil
}

// lockedProgress calls a Progress from one goroutine at a time.
type lockedProgress struct {
	mu sync.Mutex
	p  Progress
}

// Done reports n finished images to the wrapped Progress.
func (l *lockedProgress) Done(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	report(l.p, n)
}

// serialised returns p wrapped so that concurrent workers can report to it,
// or nil for a nil p.
func serialised(p Progress) Progress {
	if p == nil {
		return nil
	}
	return &lockedProgress{p: p}
}
