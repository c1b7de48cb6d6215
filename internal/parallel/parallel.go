// Package parallel spreads work over a fixed number of goroutines: the
// workers of the attacks (package attack) and of the trainer's data-parallel
// steps (package train), each of which owns its onnxruntime buffers and is
// told its worker index.
package parallel

import (
	"context"
	"sync"
	"sync/atomic"
)

// Spread runs work on min(workers, jobs) goroutines, worker w = 0, 1, …,
// and returns the first error one of them returned; the others' context is
// then cancelled. With one worker (or workers ≤ 1, or one job), work runs
// on the calling goroutine.
func Spread(ctx context.Context, workers, jobs int, work func(ctx context.Context, w int) error) error {
	n := min(workers, jobs)
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

// Pieces runs work on the pieces [lo, hi) of n items, size items each but
// the last (piece p starts at p·size), spread over the workers, each taking
// the next piece when it has finished one. It returns the error of the
// first failing piece in order, as a loop over the pieces would: after a
// failure no later piece starts, but the earlier ones running still finish.
func Pieces(ctx context.Context, workers, n, size int, work func(ctx context.Context, w, lo, hi int) error) error {
	count := (n + size - 1) / size
	var (
		next   atomic.Int64
		failed atomic.Int64 // the first failed piece, count if none
		mu     sync.Mutex
		errs   = map[int]error{}
	)
	failed.Store(int64(count))
	_ = Spread(context.WithoutCancel(ctx), workers, count, func(_ context.Context, w int) error {
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
