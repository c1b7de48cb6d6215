package attack

// Progress receives the progress of an attack: Done(n) says that n more
// images are finished. Attacks call it from the goroutine that runs them. A
// nil Progress is allowed.
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
