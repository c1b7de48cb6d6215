package attack

import "fmt"

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

// Norm is the norm that measures perturbations.
type Norm int

const (
	// L2 is the Euclidean norm.
	L2 Norm = iota + 1
	// LInf is the maximum norm.
	LInf
)

func (n Norm) String() string {
	switch n {
	case L2:
		return "L2"
	case LInf:
		return "Linf"
	}
	return fmt.Sprintf("Norm(%d)", int(n))
}

func (n Norm) valid() bool { return n == L2 || n == LInf }
