package attack

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/marginaudit/marginaudit/internal/parallel"
)

// DeepFoolOptions configure [DeepFool]: the norm, the parameters that
// decide the results, and how the attack runs. [DefaultDeepFoolOptions]
// gives the settings of the study.
type DeepFoolOptions struct {
	// Norm is L2 or LInf.
	Norm Norm
	DeepFoolParams
	// Seed seeds the noise; with image i's retry r drawing from its own
	// generator, results do not depend on BatchSize or on the order of
	// the images.
	Seed uint64
	// FirstImage is the position of the first image among all the images
	// of an attack that is run in pieces: image i draws its noise as image
	// FirstImage+i of the whole, so the pieces give the whole's results.
	FirstImage int
	// BatchSize is how many images are attacked together (one Jacobian run
	// per step); 0 means DefaultDeepFoolBatch.
	BatchSize int
	// KeepPerturbation stores x_adv − x₀ in each result.
	KeepPerturbation bool
	// Progress, if not nil, hears of every finished image.
	Progress Progress
}

// DefaultDeepFoolOptions returns the study's DeepFool in the given norm:
// DefaultDeepFoolParams, batches of DefaultDeepFoolBatch.
func DefaultDeepFoolOptions(norm Norm) DeepFoolOptions {
	return DeepFoolOptions{Norm: norm, DeepFoolParams: DefaultDeepFoolParams(), BatchSize: DefaultDeepFoolBatch}
}

// Validate checks o but for what depends on the classifier (the
// candidates' upper bound); its errors wrap ErrOptions.
func (o DeepFoolOptions) Validate() error {
	if !o.Norm.valid() {
		return bad("norm", strconv.Quote(string(o.Norm)), "l2 or linf")
	}
	if err := o.DeepFoolParams.Validate(); err != nil {
		return err
	}
	if o.BatchSize < 0 {
		return bad("batch_size", o.BatchSize, "an integer ≥ 0 (0: the default)")
	}
	return nil
}

// DeepFoolResult is what DeepFool found for one image.
type DeepFoolResult struct {
	// Label is the image's label, or -1 when none was given.
	Label int
	// Pred is the clean prediction, the reference class k̂.
	Pred int
	// AdvPred is the prediction at the final point x_adv (Pred on failure).
	AdvPred int
	// Margin is the norm of x_adv − x₀ (L2 or L∞, as attacked), an upper
	// bound of the distance to the decision boundary; +Inf on failure.
	Margin float64
	// Iterations counts the DeepFool steps, over all attempts.
	Iterations int
	// Retries counts the noisy restarts.
	Retries int
	// Success is true when the prediction at x_adv differs from Pred.
	Success bool
	// Perturbation is x_adv − x₀ with KeepPerturbation (the last attempt's
	// on failure), else nil.
	Perturbation []float32
}

// Correct reports whether the clean prediction equals the label.
func (r DeepFoolResult) Correct() bool { return r.Label == r.Pred }

// stabilityGuard is Foolbox's 1e-8 in the denominators of the distances and
// of the L2 step, against zero gradients; stepBonus is the 1e-4 added to the
// chosen distance "for numerical stability" (foolbox.attacks.deepfool).
const (
	stabilityGuard = 1e-8
	stepBonus      = 1e-4
)

// DeepFool runs DeepFool (Moosavi-Dezfooli et al., CVPR 2016) with the step
// semantics of Foolbox 3, described in the package documentation, on the
// images in x (n back to back, pixels in the classifier's range). labels,
// if not nil, holds the n labels, only copied into the results. It returns
// one result per image, in order; images that do not flip are failures in
// the results, not errors.
func DeepFool(ctx context.Context, c *Classifier, x []float32, labels []int, opt DeepFoolOptions) ([]DeepFoolResult, error) {
	if c == nil {
		return nil, ErrClosed
	}
	opt, err := c.deepFoolDefaults(opt)
	if err != nil {
		return nil, err
	}
	n, err := c.checkInput(x, -1)
	if err != nil {
		return nil, err
	}
	if err := c.checkRange(x); err != nil {
		return nil, err
	}
	if labels != nil {
		if err := c.checkLabels(labels, n); err != nil {
			return nil, err
		}
	}
	df := newDeepFool(c, opt, x, n)
	for i := range df.res {
		df.res[i].Label = -1
		if labels != nil {
			df.res[i].Label = labels[i]
		}
	}
	if err := df.rank(ctx); err != nil {
		return nil, err
	}
	if err := df.run(ctx); err != nil {
		return nil, err
	}
	return df.res, nil
}

// deepFoolDefaults checks opt and fills in the defaults of its zero
// fields.
func (c *Classifier) deepFoolDefaults(opt DeepFoolOptions) (DeepFoolOptions, error) {
	if err := opt.Validate(); err != nil {
		return opt, fmt.Errorf("%s: DeepFool: %w", c.name, err)
	}
	if opt.Candidates > c.k {
		return opt, fmt.Errorf("%s: DeepFool: %w", c.name, bad("candidates", opt.Candidates, fmt.Sprintf("0 (all) or 2 to %d, the model's classes", c.k)))
	}
	if opt.Candidates == 0 {
		opt.Candidates = c.k
	}
	if opt.NoiseStd == 0 {
		opt.NoiseStd = DefaultNoiseScale * float64(c.hi-c.lo)
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = DefaultDeepFoolBatch
	}
	return opt, nil
}

// deepFool is the state of one DeepFool run that its workers share: the
// images, each image's reference class and candidates, and the results.
// Each worker attacks the images it takes from next in a batch of its own.
type deepFool struct {
	c       *Classifier
	opt     DeepFoolOptions
	x0      []float32 // the caller's clean images
	n, d, k int
	l       int // candidates other than the reference: rows of the Jacobian
	b       int
	res     []DeepFoolResult
	pert    []float32 // backing array of the results' perturbations

	// Per image, from the clean pass: reference class and the other
	// candidates, best first.
	ref   []int
	cands []int // [n, l]

	next atomic.Int64 // the next image no worker has taken
}

func newDeepFool(c *Classifier, opt DeepFoolOptions, x []float32, n int) *deepFool {
	df := &deepFool{
		c: c, opt: opt, x0: x, n: n, d: c.d, k: c.k, l: opt.Candidates - 1, b: min(opt.BatchSize, max(n, 1)),
		res:   make([]DeepFoolResult, n),
		ref:   make([]int, n),
		cands: make([]int, n*(opt.Candidates-1)),
	}
	df.opt.Progress = serialised(opt.Progress)
	if opt.KeepPerturbation {
		df.pert = make([]float32, n*df.d)
	}
	return df
}

// rank runs the clean images forward and sets each image's reference class
// and candidates: the top Candidates scores, best first (ties to the lower
// class index), the first being the prediction.
func (df *deepFool) rank(ctx context.Context) error {
	return parallel.Pieces(ctx, df.c.workers, df.n, df.b, func(_ context.Context, _, s, e int) error {
		sc := make([]float32, (e-s)*df.k)
		if err := df.c.forward(sc, df.x0[s*df.d:e*df.d], e-s, s); err != nil {
			return err
		}
		order := make([]int, df.k)
		for i := s; i < e; i++ {
			f := sc[(i-s)*df.k : (i-s+1)*df.k]
			for j := range order {
				order[j] = j
			}
			slices.SortStableFunc(order, func(p, q int) int { return cmp.Compare(f[q], f[p]) })
			df.ref[i] = order[0]
			df.res[i].Pred = order[0]
			copy(df.cands[i*df.l:(i+1)*df.l], order[1:1+df.l])
		}
		return nil
	})
}

// run attacks every image on the classifier's workers.
func (df *deepFool) run(ctx context.Context) error {
	return parallel.Spread(ctx, df.c.workers, (df.n+df.b-1)/df.b, func(ctx context.Context, _ int) error {
		return df.newWorker().run(ctx)
	})
}

// dfWorker is one worker of a DeepFool run: a batch of b places, of which
// the first a hold images in play ("slots"); each slot's rows in the
// buffers below belong to the image img[s].
type dfWorker struct {
	*deepFool
	a                     int
	img, steps, iters     []int
	retries               []int
	fresh, stalled        []bool
	start, total, cur     []float32 // [b, d]: x₀ of the attempt, P, x
	seeds                 []float32 // [b, l, k]
	scores, jac, fwdScore []float32
}

func (df *deepFool) newWorker() *dfWorker {
	b, d, k, l := df.b, df.d, df.k, df.l
	return &dfWorker{
		deepFool: df,
		img:      make([]int, b), steps: make([]int, b), iters: make([]int, b), retries: make([]int, b),
		fresh: make([]bool, b), stalled: make([]bool, b),
		start: make([]float32, b*d), total: make([]float32, b*d), cur: make([]float32, b*d),
		seeds:  make([]float32, b*l*k),
		scores: make([]float32, b*k), jac: make([]float32, b*l*d), fwdScore: make([]float32, b*k),
	}
}

// run attacks the images the worker takes, keeping its batch full.
func (df *dfWorker) run(ctx context.Context) error {
	for {
		for df.a < df.b {
			i := int(df.next.Add(1) - 1)
			if i >= df.n {
				break
			}
			df.enter(df.a, i)
			df.a++
		}
		if df.a == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := df.step(); err != nil {
			return err
		}
		done, err := df.check()
		if err != nil {
			return err
		}
		report(df.opt.Progress, done)
	}
}

// enter puts image i into slot s, for its first attempt.
func (df *dfWorker) enter(s, i int) {
	d, k, l := df.d, df.k, df.l
	df.img[s], df.steps[s], df.iters[s], df.retries[s] = i, 0, 0, 0
	df.fresh[s], df.stalled[s] = false, false
	x0 := df.x0[i*d : (i+1)*d]
	copy(df.start[s*d:(s+1)*d], x0)
	copy(df.cur[s*d:(s+1)*d], x0)
	clear(df.total[s*d : (s+1)*d])
	seeds := df.seeds[s*l*k : (s+1)*l*k]
	clear(seeds)
	for j, cand := range df.cands[i*l : (i+1)*l] {
		seeds[j*k+cand] = 1
		seeds[j*k+df.ref[i]] = -1
	}
}

// restart begins image img[s]'s next attempt, from the clean image plus
// seeded Gaussian noise, clipped to the range.
func (df *dfWorker) restart(s int) {
	d := df.d
	df.retries[s]++
	df.steps[s], df.fresh[s], df.stalled[s] = 0, true, false
	i := df.img[s]
	rng := rand.New(rand.NewPCG(df.opt.Seed, uint64(df.opt.FirstImage+i)<<20|uint64(df.retries[s])))
	x0, start := df.x0[i*d:(i+1)*d], df.start[s*d:(s+1)*d]
	lo, hi := df.c.lo, df.c.hi
	for j, v := range x0 {
		start[j] = min(max(float32(float64(v)+df.opt.NoiseStd*rng.NormFloat64()), lo), hi)
	}
	copy(df.cur[s*d:(s+1)*d], start)
	clear(df.total[s*d : (s+1)*d])
}

// move copies slot src into slot dst.
func (df *dfWorker) move(dst, src int) {
	d, lk := df.d, df.l*df.k
	df.img[dst], df.steps[dst], df.iters[dst], df.retries[dst] = df.img[src], df.steps[src], df.iters[src], df.retries[src]
	df.fresh[dst], df.stalled[dst] = df.fresh[src], df.stalled[src]
	for _, buf := range [][]float32{df.start, df.total, df.cur} {
		copy(buf[dst*d:(dst+1)*d], buf[src*d:(src+1)*d])
	}
	copy(df.seeds[dst*lk:(dst+1)*lk], df.seeds[src*lk:(src+1)*lk])
}

// step runs the Jacobian graph on the slots and takes one DeepFool step in
// each.
func (df *dfWorker) step() error {
	a, d, k, l := df.a, df.d, df.k, df.l
	if err := df.c.seededJacobian(df.scores[:a*k], df.jac[:a*l*d], df.cur[:a*d], a, df.seeds[:a*l*k], l, 0); err != nil {
		return df.imageErr(err)
	}
	scale := 1 + df.opt.Overshoot
	lo, hi := df.c.lo, df.c.hi
	for s := range a {
		f := df.scores[s*k : (s+1)*k]
		i := df.img[s]
		ref := df.ref[i]
		if df.fresh[s] {
			// A noisy start: Foolbox's loop checks the point before it
			// steps. If it is adversarial already, let the forward check
			// confirm it.
			df.fresh[s] = false
			if argmax(f) != ref {
				continue
			}
		}
		best, bestDist, bestNorm := 0, math.Inf(1), 0.0
		for j, cand := range df.cands[i*l : (i+1)*l] {
			w := df.jac[(s*l+j)*d : (s*l+j+1)*d]
			q := dualNorm(w, df.opt.Norm)
			dist := math.Abs(float64(f[cand])-float64(f[ref])) / (q + stabilityGuard)
			if dist < bestDist {
				best, bestDist, bestNorm = j, dist, q
			}
		}
		w := df.jac[(s*l+best)*d : (s*l+best+1)*d]
		dist := bestDist + stepBonus
		total := df.total[s*d : (s+1)*d]
		if df.opt.Norm == L2 {
			c := dist / (bestNorm + stabilityGuard)
			for j, v := range w {
				total[j] += float32(c * float64(v))
			}
		} else {
			step := float32(dist)
			for j, v := range w {
				switch {
				case v > 0:
					total[j] += step
				case v < 0:
					total[j] -= step
				}
			}
		}
		start, cur := df.start[s*d:(s+1)*d], df.cur[s*d:(s+1)*d]
		moved := false
		for j, p := range total {
			v := min(max(float32(float64(start[j])+scale*float64(p)), lo), hi)
			if v != cur[j] {
				moved = true
				cur[j] = v
			}
		}
		// A step that leaves x where it was is repeated identically ever
		// after (same point, same gradients, clipping on the same
		// pixels): the attempt is over.
		df.stalled[s] = !moved
		df.steps[s]++
		df.iters[s]++
	}
	return nil
}

// dualNorm returns ‖w‖₂ for L2 and ‖w‖₁ for L∞ attacks.
func dualNorm(w []float32, norm Norm) float64 {
	var sum float64
	if norm == L2 {
		for _, v := range w {
			sum += float64(v) * float64(v)
		}
		return math.Sqrt(sum)
	}
	for _, v := range w {
		sum += math.Abs(float64(v))
	}
	return sum
}

// check runs the slots forward, retires the images that flipped or ran out
// of attempts, restarts those with attempts left, and returns how many
// images finished.
func (df *dfWorker) check() (int, error) {
	a, d, k := df.a, df.d, df.k
	if err := df.c.forward(df.fwdScore[:a*k], df.cur[:a*d], a, 0); err != nil {
		return 0, df.imageErr(err)
	}
	done := 0
	for s := a - 1; s >= 0; s-- {
		pred := argmax(df.fwdScore[s*k : (s+1)*k])
		flipped := pred != df.ref[df.img[s]]
		switch {
		case flipped:
		case df.steps[s] < df.opt.MaxIter && !df.stalled[s]:
			continue
		case df.retries[s] < df.opt.Retries:
			df.restart(s)
			continue
		}
		df.finish(s, pred, flipped)
		done++
		df.a--
		if s != df.a {
			df.move(s, df.a)
		}
	}
	return done, nil
}

// finish records the result of the image in slot s.
func (df *dfWorker) finish(s, pred int, success bool) {
	d := df.d
	i := df.img[s]
	r := &df.res[i]
	r.AdvPred, r.Iterations, r.Retries, r.Success = pred, df.iters[s], df.retries[s], success
	x0, cur := df.x0[i*d:(i+1)*d], df.cur[s*d:(s+1)*d]
	if df.pert != nil {
		p := df.pert[i*d : (i+1)*d : (i+1)*d]
		for j := range p {
			p[j] = cur[j] - x0[j]
		}
		r.Perturbation = p
	}
	if !success {
		r.Margin = math.Inf(1)
		return
	}
	r.Margin = distance(cur, x0, df.opt.Norm)
}

// distance returns ‖x − y‖ in the given norm.
func distance(x, y []float32, norm Norm) float64 {
	var acc float64
	for j, v := range x {
		e := float64(v) - float64(y[j])
		if norm == L2 {
			acc += e * e
		} else {
			acc = max(acc, math.Abs(e))
		}
	}
	if norm == L2 {
		return math.Sqrt(acc)
	}
	return acc
}

// imageErr turns the slot numbers of a NonFiniteError into image numbers.
func (df *dfWorker) imageErr(err error) error {
	if e, ok := err.(*NonFiniteError); ok && e.Image < df.a {
		e2 := *e
		e2.Image = df.img[e.Image]
		return &e2
	}
	return err
}
