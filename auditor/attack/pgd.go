package attack

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/marginaudit/marginaudit/internal/option"
	"github.com/marginaudit/marginaudit/internal/parallel"
)

// PGDOptions configure [PGD]: the ball, the parameters that decide the
// results, and how the attack runs.
type PGDOptions struct {
	// Norm is LInf or L2.
	Norm Norm
	// Eps is the radius ε of the ball around the clean image, in pixel
	// units of the chosen norm.
	Eps float64
	PGDParams
	// Seed seeds the random starts. A PGD value draws from one generator
	// for its whole life, so successive calls get fresh starts, unless
	// [PGD.Reseed] restarts it.
	Seed uint64
	// BatchSize is how many images one onnxruntime run takes; 0 means all
	// the images of the call, shared equally among the classifier's
	// workers (one run per worker and step).
	BatchSize int
	// EarlyStop freezes an image as soon as it is misclassified, so that
	// the attack returns the first adversarial point it meets; without it
	// every image takes all the steps (as adversarial training wants).
	EarlyStop bool
	// Progress, if not nil, hears of finished images.
	Progress Progress
}

// DefaultPGDOptions returns the study's robust-accuracy PGD at radius eps
// in the given norm: DefaultPGDParams.
func DefaultPGDOptions(norm Norm, eps float64) PGDOptions {
	return PGDOptions{Norm: norm, Eps: eps, PGDParams: DefaultPGDParams()}
}

// Validate checks o; its errors wrap ErrOptions.
func (o PGDOptions) Validate() error {
	switch {
	case !o.Norm.valid():
		return bad("norm", strconv.Quote(string(o.Norm)), "linf or l2")
	case !(o.Eps >= 0) || !option.Finite(o.Eps):
		return bad("eps", o.Eps, "a finite radius ≥ 0")
	case o.BatchSize < 0:
		return bad("batch_size", o.BatchSize, "an integer ≥ 0 (0: all the images)")
	}
	return o.PGDParams.Validate()
}

// PGD runs projected gradient descent on the cross-entropy loss (Madry et
// al., ICLR 2018) against one classifier. It keeps its buffers between
// calls, so that adversarial training allocates little per batch. A PGD is
// not safe for concurrent use.
type PGD struct {
	c   *Classifier
	opt PGDOptions
	src *rand.PCG
	rng *rand.Rand
	// work holds each worker's buffers, reused between calls.
	work []pgdScratch
}

// pgdScratch holds the buffers of one worker of a PGD attack: the loss
// gradient of a batch, the scores, and the images frozen by early stopping.
type pgdScratch struct {
	sc   lossScratch
	grad []float32
	done []bool
}

// NewPGD checks opt and returns a PGD attack on c.
func NewPGD(c *Classifier, opt PGDOptions) (*PGD, error) {
	if c == nil {
		return nil, ErrClosed
	}
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("%s: PGD: %w", c.name, err)
	}
	opt.Step = opt.StepFor(opt.Eps)
	src := rand.NewPCG(opt.Seed, pgdStream)
	return &PGD{c: c, opt: opt, src: src, rng: rand.New(src), work: make([]pgdScratch, c.workers)}, nil
}

// pgdStream is the PCG stream of the random starts.
const pgdStream = 0x9d

// Reseed restarts the generator of the random starts from seed: the next
// Attack draws the starts that the first Attack of a new PGD with
// PGDOptions.Seed = seed would. Adversarial training reseeds for every
// mini-batch from (seed, epoch, batch), so that a resumed run repeats the
// starts of an uninterrupted one.
func (p *PGD) Reseed(seed uint64) { p.src.Seed(seed, pgdStream) }

// Attack writes to adv the adversarial images of the n images in x (pixels
// in the classifier's range) with the given labels, and, if success is not
// nil, whether each adversarial image is misclassified. adv must have the
// length of x and not overlap it.
func (p *PGD) Attack(ctx context.Context, adv, x []float32, labels []int, success []bool) error {
	c := p.c
	n, err := c.checkInput(x, -1)
	if err != nil {
		return err
	}
	if err := c.checkRange(x); err != nil {
		return err
	}
	if err := c.checkLabels(labels, n); err != nil {
		return err
	}
	switch {
	case len(adv) != len(x):
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("PGD: %d values for the adversarial images of %d input values", len(adv), len(x))}
	case success != nil && len(success) != n:
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("PGD: %d success flags for %d images", len(success), n)}
	}
	b := p.opt.BatchSize
	if b == 0 || b > n {
		b = max(1, (n+c.workers-1)/c.workers)
	}
	// The random starts are drawn here, image after image, so that they do
	// not depend on how the workers share the batches.
	copy(adv, x)
	if p.opt.RandomStart {
		for i := range n {
			p.randomStart(adv[i*c.d:(i+1)*c.d], x[i*c.d:(i+1)*c.d])
		}
	}
	progress := serialised(p.opt.Progress)
	return parallel.Pieces(ctx, c.workers, n, b, func(ctx context.Context, w, s, e int) error {
		sc := &p.work[w]
		if err := p.batch(ctx, sc, adv[s*c.d:e*c.d], x[s*c.d:e*c.d], labels[s:e], e-s, s, success != nil); err != nil {
			return err
		}
		if success != nil {
			for j := range e - s {
				success[s+j] = argmax(sc.sc.scores[j*c.k:(j+1)*c.k]) != labels[s+j]
			}
		}
		report(progress, e-s)
		return nil
	})
}

// batch attacks m images from their starts in adv, with w's buffers;
// first is the index of the first in the caller's batch. With scores,
// w.sc.scores holds the scores at the adversarial images on return (one
// more forward run).
func (p *PGD) batch(ctx context.Context, w *pgdScratch, adv, x0 []float32, labels []int, m, first int, scores bool) error {
	c, d := p.c, p.c.d
	w.grad = grow(w.grad, m*d)
	if cap(w.done) < m {
		w.done = make([]bool, m)
	}
	done := w.done[:m]
	clear(done)
	for range p.opt.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := c.lossGradient(&w.sc, w.grad, adv, labels, m, first); err != nil {
			return err
		}
		active := 0
		for i := range m {
			if p.opt.EarlyStop && (done[i] || argmax(w.sc.scores[i*c.k:(i+1)*c.k]) != labels[i]) {
				done[i] = true
				continue
			}
			active++
			p.move(adv[i*d:(i+1)*d], x0[i*d:(i+1)*d], w.grad[i*d:(i+1)*d])
		}
		if active == 0 {
			break
		}
	}
	if !scores {
		return nil
	}
	w.sc.scores = grow(w.sc.scores, m*c.k)
	return c.forward(w.sc.scores, adv, m, first)
}

// move takes one step from adv along the gradient g, then projects onto the
// ε-ball around x0 and clips to the range.
func (p *PGD) move(adv, x0, g []float32) {
	alpha := p.opt.Step
	if p.opt.Norm == LInf {
		a := float32(alpha)
		for j, v := range g {
			switch {
			case v > 0:
				adv[j] += a
			case v < 0:
				adv[j] -= a
			}
		}
		p.project(adv, x0)
		return
	}
	norm := dualNorm(g, L2)
	if norm == 0 {
		return
	}
	scale := alpha / norm
	for j, v := range g {
		adv[j] = float32(float64(adv[j]) + scale*float64(v))
	}
	p.project(adv, x0)
}

// project maps adv onto the ε-ball around x0, then clips it to the range.
// Both hold exactly in float32: every pixel of an L∞ result lies in
// [x0 − ε, x0 + ε] as float32 computes them, and the L2 norm of adv − x0,
// summed in float64, is at most ε (clipping only brings pixels closer to x0,
// which lies in the range).
func (p *PGD) project(adv, x0 []float32) {
	lo, hi := p.c.lo, p.c.hi
	if p.opt.Norm == LInf {
		eps := float32(p.opt.Eps)
		for j, v := range x0 {
			adv[j] = min(max(adv[j], v-eps, lo), v+eps, hi)
		}
		return
	}
	eps := p.opt.Eps
	if n := distance(adv, x0, L2); n > eps {
		s := eps / n
		for try := 0; try < 8 && n > eps; try++ {
			for j, v := range x0 {
				adv[j] = v + float32(s*(float64(adv[j])-float64(v)))
			}
			n = distance(adv, x0, L2)
			// Rounding may leave the norm a hair above ε: shrink again by
			// a factor just under 1.
			s = eps / n * (1 - 1e-6)
		}
	}
	for j := range adv {
		adv[j] = min(max(adv[j], lo), hi)
	}
}

// randomStart sets adv to a uniformly random point of the ε-ball around x0,
// clipped to the range.
func (p *PGD) randomStart(adv, x0 []float32) {
	eps := p.opt.Eps
	if p.opt.Norm == LInf {
		for j, v := range x0 {
			adv[j] = v + float32(eps*(2*p.rng.Float64()-1))
		}
		p.project(adv, x0)
		return
	}
	// A Gaussian direction, and a radius ε·u^(1/D): uniform in the ball.
	var sum float64
	for j := range adv {
		z := p.rng.NormFloat64()
		adv[j] = float32(z)
		sum += z * z
	}
	r := eps * math.Pow(p.rng.Float64(), 1/float64(len(adv))) / math.Sqrt(sum)
	for j, v := range x0 {
		adv[j] = v + float32(r*float64(adv[j]))
	}
	p.project(adv, x0)
}

// Robustness is the outcome of [RobustAccuracy].
type Robustness struct {
	// N counts the images, Correct those the model classifies correctly,
	// and Robust those it still classifies correctly under the attack
	// (Robust ≤ Correct: an image counts only if both hold).
	N, Correct, Robust int
	// IsRobust tells, image by image, whether it counts in Robust.
	IsRobust []bool
}

// CleanAccuracy returns Correct/N.
func (r Robustness) CleanAccuracy() float64 { return float64(r.Correct) / float64(r.N) }

// RobustAccuracy returns Robust/N.
func (r Robustness) RobustAccuracy() float64 { return float64(r.Robust) / float64(r.N) }

// RobustAccuracy attacks the images in x with PGD and counts the images
// classified correctly both clean and at every point the attack visits:
// EarlyStop is forced on, since one misclassified point in the ball is
// enough. A zero opt.BatchSize means DefaultRobustBatch images per run.
func RobustAccuracy(ctx context.Context, c *Classifier, x []float32, labels []int, opt PGDOptions) (Robustness, error) {
	opt.EarlyStop = true
	if opt.BatchSize == 0 {
		opt.BatchSize = DefaultRobustBatch
	}
	p, err := NewPGD(c, opt)
	if err != nil {
		return Robustness{}, err
	}
	pred, err := c.Predict(x, -1)
	if err != nil {
		return Robustness{}, err
	}
	adv := make([]float32, len(x))
	success := make([]bool, len(pred))
	if err := p.Attack(ctx, adv, x, labels, success); err != nil {
		return Robustness{}, err
	}
	r := Robustness{N: len(pred), IsRobust: make([]bool, len(pred))}
	for i, y := range labels {
		if pred[i] == y {
			r.Correct++
			if !success[i] {
				r.Robust++
				r.IsRobust[i] = true
			}
		}
	}
	return r, nil
}
