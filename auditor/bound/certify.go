package bound

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// Defaults of [Options].
const (
	// DefaultSteps bisection steps resolve the certified radius to 2⁻¹⁶ of
	// the bracket's upper end.
	DefaultSteps = 16
	// DefaultSafety shrinks every certified radius by 0.1 %: the bound
	// graphs run in float32, and at the radius where the bound crosses zero its rounding
	// error (relative 1e-6 of its terms) could flip a proof; a radius
	// 0.1 % smaller lowers the bound by far more than that. Tests hold the
	// result against the float64 reference (bench/bound/crownref).
	DefaultSafety = 1e-3
	// DefaultMemory is the memory the linear bounds of one run may take.
	DefaultMemory = 1 << 30
)

// ErrOptions is wrapped by the errors of invalid [Options] and arguments.
var ErrOptions = errors.New("bound: invalid options")

// Options configure a [Certifier]. The zero value gives the defaults.
type Options struct {
	// Steps is the number of bisection steps on ε; 0 means DefaultSteps.
	Steps int
	// Safety is the relative amount every certified radius is shrunk by;
	// 0 means DefaultSafety, a negative value none.
	Safety float64
	// Threads is the number of threads each onnxruntime run may use; 0 lets
	// onnxruntime choose.
	Threads int
	// BatchSize is how many images one run bounds; 0 chooses it so that
	// the linear bounds take about DefaultMemory.
	BatchSize int
}

// Certifier computes certified lower bounds of a classifier's margins. Its
// methods are safe for concurrent use; Close releases it.
type Certifier struct {
	name   string
	c      *attack.Classifier
	net    *Net
	lo, hi float64
	steps  int
	safety float64
	batch  int
	thr    int

	mu       sync.Mutex
	sessions map[attack.Norm]*ort.Session
}

// New prepares certified bounds for the classifier c (its graph as
// [attack.Classifier.Model] returns it: pixel space, normalisation
// inside, the input box c.Range()). It fails with an *UnsupportedError on
// an op that bound propagation does not support.
func New(c *attack.Classifier, opt Options) (*Certifier, error) {
	net, err := Parse(c.Model(), c.Name())
	if err != nil {
		return nil, err
	}
	if net.Classes < 2 {
		return nil, fmt.Errorf("bound: %s: %d classes; need at least 2", c.Name(), net.Classes)
	}
	switch {
	case opt.Steps < 0 || opt.Steps > 60:
		return nil, fmt.Errorf("%w: %d bisection steps, want 0 to 60", ErrOptions, opt.Steps)
	case opt.BatchSize < 0 || opt.Threads < 0:
		return nil, fmt.Errorf("%w: negative batch size or thread count", ErrOptions)
	}
	lo, hi := c.Range()
	ct := &Certifier{name: c.Name(), c: c, net: net, lo: float64(lo), hi: float64(hi), steps: opt.Steps, safety: opt.Safety,
		batch: opt.BatchSize, thr: opt.Threads, sessions: map[attack.Norm]*ort.Session{}}
	if ct.steps == 0 {
		ct.steps = DefaultSteps
	}
	switch {
	case ct.safety == 0:
		ct.safety = DefaultSafety
	case ct.safety < 0:
		ct.safety = 0
	}
	if ct.batch == 0 {
		ct.batch = max(1, min(256, DefaultMemory/net.bytesPerImage()))
	}
	return ct, nil
}

// bytesPerImage estimates the memory of the largest linear bound tensors
// of one image: rows × values per tensor, a few alive at a time (bounds
// found by forward passes take no rows).
func (n *Net) bytesPerImage() int {
	biggest := 0
	for _, t := range n.Shapes {
		biggest = max(biggest, size(t))
	}
	rows := n.Classes
	for _, l := range n.Layers {
		if (l.Kind == Relu || l.Kind == MaxPool) && n.affineChain(l.In[0]) == nil {
			rows = max(rows, 2*n.Size(l.In[0]))
		}
	}
	return 4 * 4 * rows * biggest
}

// Net returns the network as bound propagation reads it.
func (ct *Certifier) Net() *Net { return ct.net }

// Close releases the onnxruntime sessions; safe to call more than once.
func (ct *Certifier) Close() error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	var errs []error
	for k, s := range ct.sessions {
		errs = append(errs, s.Close())
		delete(ct.sessions, k)
	}
	return errors.Join(errs...)
}

func (ct *Certifier) session(norm attack.Norm) (*ort.Session, error) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if s, ok := ct.sessions[norm]; ok {
		return s, nil
	}
	data, err := onnxgrad.Encode(boundGraph(ct.net, norm, ct.lo, ct.hi))
	if err != nil {
		return nil, fmt.Errorf("bound: %s: %w", ct.name, err)
	}
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: ct.thr, NoSpinning: true})
	if err != nil {
		return nil, fmt.Errorf("bound: %s: %v bound graph: %w", ct.name, norm, err)
	}
	ct.sessions[norm] = s
	return s, nil
}

// check validates x (n images), pred and norm, filling in pred from the
// classifier when nil.
func (ct *Certifier) check(x []float32, pred []int, norm attack.Norm) ([]int, error) {
	d := ct.net.Size(0)
	if len(x)%d != 0 {
		return nil, fmt.Errorf("%w: %d values are not whole images of %d", ErrOptions, len(x), d)
	}
	if norm != attack.L2 && norm != attack.LInf {
		return nil, fmt.Errorf("%w: unknown norm %v", ErrOptions, norm)
	}
	n := len(x) / d
	if pred == nil {
		return ct.c.Predict(x, n)
	}
	if len(pred) != n {
		return nil, fmt.Errorf("%w: %d predictions for %d images", ErrOptions, len(pred), n)
	}
	for i, p := range pred {
		if p < 0 || p >= ct.net.Classes {
			return nil, fmt.Errorf("%w: image %d: class %d outside [0, %d)", ErrOptions, i, p, ct.net.Classes)
		}
	}
	return pred, nil
}

// Lower returns for each image i of x (images back to back in pixel space)
// a lower bound of min over j ≠ pred[i] of z_pred(x') − z_j(x'), over every
// x' within distance eps[i] (in the norm) of image i and inside the input
// box: CROWN with adaptive lower slopes, CROWN for every intermediate
// bound. For L∞ the ball meets the box exactly; for L2 the bound is the
// larger of the ball's (Λx − ε‖Λ‖₂) and the box [x−ε, x+ε]∩[lo, hi]'s,
// each sound alone. pred nil means the classifier's predictions. A
// positive value proves that no class overtakes pred[i] within eps[i].
func (ct *Certifier) Lower(x []float32, pred []int, eps []float64, norm attack.Norm) ([]float64, error) {
	pred, err := ct.check(x, pred, norm)
	if err != nil {
		return nil, err
	}
	if len(eps) != len(pred) {
		return nil, fmt.Errorf("%w: %d radii for %d images", ErrOptions, len(eps), len(pred))
	}
	out := make([]float64, len(pred))
	d := ct.net.Size(0)
	for s := 0; s < len(pred); s += ct.batch {
		e := min(s+ct.batch, len(pred))
		if err := ct.run(out[s:e], x[s*d:e*d], pred[s:e], eps[s:e], norm); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// run bounds one chunk of images into low.
func (ct *Certifier) run(low []float64, x []float32, pred []int, eps []float64, norm attack.Norm) error {
	s, err := ct.session(norm)
	if err != nil {
		return err
	}
	n, k := int64(len(pred)), ct.net.Classes
	spec := make([]float32, int(n)*(k-1)*k)
	for i, p := range pred {
		r := 0
		for j := range k {
			if j == p {
				continue
			}
			row := spec[(i*(k-1)+r)*k:]
			row[p], row[j] = 1, -1
			r++
		}
	}
	e := make([]float32, n)
	for i, v := range eps {
		e[i] = float32(v)
	}
	xs := append([]int64{n}, ct.net.Shapes[0]...)
	outs := []ort.Value{ort.NewValue(make([]float32, int(n)*(k-1)), n, int64(k-1))}
	if err := s.Run([]ort.Value{ort.NewValue(x, xs...), ort.NewValue(e, n), ort.NewValue(spec, n, int64(k-1), int64(k))}, outs); err != nil {
		return fmt.Errorf("bound: %s: %w", ct.name, err)
	}
	res := outs[0].Float32s()
	for i := range low {
		m := math.Inf(1)
		for _, v := range res[i*(k-1) : (i+1)*(k-1)] {
			m = min(m, float64(v))
		}
		if math.IsNaN(m) || math.IsNaN(float64(res[i*(k-1)])) {
			return fmt.Errorf("bound: %s: image %d: the bound is not a number", ct.name, i)
		}
		low[i] = m
	}
	return nil
}

// Certify returns for each image the certified radius: the largest ε found
// by bisection (Options.Steps halvings of [0, upper[i]]) at which [Lower]
// proves the prediction, shrunk by Options.Safety; 0 if none is proven.
// upper (nil, or one per image; a value ≤ 0 or not finite is ignored)
// brackets the search, typically with the attack's margin, else the
// bracket is the input box's diameter in the norm. Images are bisected
// together, each with its own ε, batch by batch.
func (ct *Certifier) Certify(ctx context.Context, x []float32, pred []int, norm attack.Norm, upper []float64) ([]float64, error) {
	pred, err := ct.check(x, pred, norm)
	if err != nil {
		return nil, err
	}
	n := len(pred)
	if upper != nil && len(upper) != n {
		return nil, fmt.Errorf("%w: %d upper bounds for %d images", ErrOptions, len(upper), n)
	}
	diam := ct.hi - ct.lo
	if norm == attack.L2 {
		diam *= math.Sqrt(float64(ct.net.Size(0)))
	}
	lo, hi := make([]float64, n), make([]float64, n)
	for i := range hi {
		hi[i] = diam
		if upper != nil && upper[i] > 0 && !math.IsInf(upper[i], 0) {
			hi[i] = min(upper[i], diam)
		}
	}
	mid, low := make([]float64, n), make([]float64, n)
	d := ct.net.Size(0)
	for s := 0; s < n; s += ct.batch {
		e := min(s+ct.batch, n)
		for range ct.steps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for i := s; i < e; i++ {
				mid[i] = float64(float32((lo[i] + hi[i]) / 2))
			}
			if err := ct.run(low[s:e], x[s*d:e*d], pred[s:e], mid[s:e], norm); err != nil {
				return nil, err
			}
			for i := s; i < e; i++ {
				if low[i] > 0 {
					lo[i] = mid[i]
				} else {
					hi[i] = mid[i]
				}
			}
		}
	}
	for i := range lo {
		lo[i] *= 1 - ct.safety
	}
	return lo, nil
}
