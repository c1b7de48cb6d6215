package attack

import "sync"

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
