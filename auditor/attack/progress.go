package attack

import "sync"

// Progress receives the progress of an attack: Done(n) says that n more
// images are finished. Attacks call it from one goroutine at a time, which
// may be any of their workers' (see [Options.Workers]). A nil Progress is
// allowed.
type Progress interface {
	Done(n int)
}

// ProgressFunc adapts a function to [Progress].
type ProgressFunc func(n int)

// Done calls f(n).
func (f ProgressFunc) Done(n int) { f(n) }

func report(p Progress, n int) {
	if p != nil && n > 0 {
		p.Done(n)
	}
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
