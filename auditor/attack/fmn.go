package attack

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/marginaudit/marginaudit/internal/parallel"
)

// Defaults of [FMNOptions]. The schedules are the paper's (Pintor et al.,
// NeurIPS 2021, Sect. 3 and the authors' code): γ anneals by a cosine to
// 0.001, as does the step size α from α₀ to α₀/100; γ starts at 0.2
// rather than the paper's 0.05. The step sizes are in pixel units for the
// range [0, 1] and scale with hi − lo.
const (
	// DefaultFMNSteps is the step budget of the refinement. Measured in
	// bench/fmn on an MNIST MLP and a Fashion-MNIST CNN (L2 and L∞), 25
	// steps from DeepFool's points come within 1.5 % of the best margins
	// that FMN and DDN find in 100 steps from the clean images, at 1.6 to
	// 2.7 times DeepFool's time in all; 50 and 100 steps gain another 1 to
	// 2 % at 2.3 to 3.6 and 3.5 to 6.3 times.
	DefaultFMNSteps = 25
	// DefaultFMNGammaInit and DefaultFMNGammaFinal bound the factor by
	// which the norm constraint ε shrinks (1 − γ) or grows (1 + γ). From
	// a warm start ε must be able to shrink fast: where DeepFool's point
	// lies far from the nearest boundary (a PGD-trained MLP in L∞), 25
	// steps that start at γ = 0.05 can shrink ε to about half at most,
	// and left the mean margin 8 % above what a start at γ = 0.2 reached;
	// elsewhere 0.2 did as well as 0.05 or better (bench/fmn/README.md).
	DefaultFMNGammaInit  = 0.2
	DefaultFMNGammaFinal = 0.001
	// DefaultFMNStepL2 and DefaultFMNStepLInf are α₀, the first step's
	// length in L2 (the step is α·g/‖g‖₂ for both norms, as in the
	// authors' code), the authors' default. Measured in bench/fmn: for L∞
	// α₀ = 10 came 0.2 % closer to the boundary on an MNIST MLP but 7 %
	// less close on a Fashion-MNIST CNN; for L2, α₀ = 0.3 or 3 did no
	// better.
	DefaultFMNStepL2   = 1.0
	DefaultFMNStepLInf = 1.0
	// DefaultFMNBisectSteps is the number of halvings of the segment
	// between the clean image and the start point before the first step.
	DefaultFMNBisectSteps = 10
	// DefaultFMNSearchSteps is the number of PGD steps per radius of the
	// search for a start point where DeepFool failed, and
	// DefaultFMNSearchRadii the number of radii, doubling up to the
	// largest perturbation the input range allows.
	DefaultFMNSearchSteps = 20
	DefaultFMNSearchRadii = 8
	// DefaultFMNBatchSize is how many images are refined together.
	DefaultFMNBatchSize = 64
)

// fmnConfirmEvery is how many FMN steps pass between the forward runs that
// confirm the closest adversarial points seen: confirming only the closest
// since the last run costs one forward run of the batch per 10 steps
// instead of one per step, and loses only points that a later, closer one
// replaces, or that the forward run would have refused anyway.
const fmnConfirmEvery = 10

// FMNOptions configure [FMN]. A zero field selects its default, from the
// DefaultFMN… constants; [DefaultFMNOptions] spells them out.
type FMNOptions struct {
	// Norm is L2 or LInf.
	Norm Norm
	// Steps is the step budget per image; 0 means DefaultFMNSteps.
	Steps int
	// Step is α₀, the length (in L2, for the range [0, 1]) of the first
	// step; it anneals to Step/100. 0 means DefaultFMNStepL2 or
	// DefaultFMNStepLInf.
	Step float64
	// GammaInit and GammaFinal bound the annealed factor γ of the norm
	// constraint; 0 means DefaultFMNGammaInit and DefaultFMNGammaFinal.
	GammaInit, GammaFinal float64
	// BisectSteps halvings of the segment between the clean image and the
	// start point come first; 0 means DefaultFMNBisectSteps.
	BisectSteps int
	// SearchSteps and SearchRadii shape the PGD search for a start point
	// for the images DeepFool did not flip; 0 means DefaultFMNSearchSteps
	// and DefaultFMNSearchRadii.
	SearchSteps, SearchRadii int
	// BatchSize is how many images are refined together (one Jacobian run
	// per step); 0 means DefaultFMNBatchSize.
	BatchSize int
	// KeepPerturbation stores the refined point minus the clean image in
	// each result.
	KeepPerturbation bool
	// Progress, if not nil, hears of every refined image.
	Progress Progress
}

// DefaultFMNOptions returns the default options for the norm.
func DefaultFMNOptions(norm Norm) FMNOptions {
	return FMNOptions{Norm: norm}.withDefaults()
}

// Validate reports the first option outside its allowed values, as an
// error wrapping [ErrOptions] that names the field.
func (o FMNOptions) Validate() error {
	finite := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	switch {
	case !o.Norm.valid():
		return bad("norm", o.Norm, "l2 or linf")
	case o.Steps < 0:
		return bad("steps", o.Steps, "≥ 0")
	case !finite(o.Step):
		return bad("step", o.Step, "a finite value ≥ 0")
	case !finite(o.GammaInit) || o.GammaInit >= 1:
		return bad("gamma_init", o.GammaInit, "0 ≤ γ < 1")
	case !finite(o.GammaFinal) || o.GammaFinal >= 1:
		return bad("gamma_final", o.GammaFinal, "0 ≤ γ < 1")
	case o.BisectSteps < 0:
		return bad("bisect_steps", o.BisectSteps, "≥ 0")
	case o.SearchSteps < 0:
		return bad("search_steps", o.SearchSteps, "≥ 0")
	case o.SearchRadii < 0 || o.SearchRadii > 60:
		return bad("search_radii", o.SearchRadii, "0 to 60")
	case o.BatchSize < 0:
		return bad("batch_size", o.BatchSize, "≥ 0")
	}
	return nil
}

// withDefaults fills in the zero fields.
func (o FMNOptions) withDefaults() FMNOptions {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setf := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	set(&o.Steps, DefaultFMNSteps)
	set(&o.BisectSteps, DefaultFMNBisectSteps)
	set(&o.SearchSteps, DefaultFMNSearchSteps)
	set(&o.SearchRadii, DefaultFMNSearchRadii)
	set(&o.BatchSize, DefaultFMNBatchSize)
	if o.Norm == LInf {
		setf(&o.Step, DefaultFMNStepLInf)
	} else {
		setf(&o.Step, DefaultFMNStepL2)
	}
	setf(&o.GammaInit, DefaultFMNGammaInit)
	setf(&o.GammaFinal, DefaultFMNGammaFinal)
	return o
}

// StartKind says where the refinement of an image started.
type StartKind int

const (
	// StartNone: nothing flipped the image; it is censored.
	StartNone StartKind = iota
	// StartDeepFool: DeepFool's adversarial point.
	StartDeepFool
	// StartSearch: DeepFool failed (or its point did not flip when run
	// again); the PGD search at growing radius found the start, or, where
	// it found none, a constant image (lo, (lo + hi)/2 or hi) is.
	StartSearch
)

func (s StartKind) String() string {
	switch s {
	case StartNone:
		return "none"
	case StartDeepFool:
		return "deepfool"
	case StartSearch:
		return "search"
	}
	return fmt.Sprintf("StartKind(%d)", int(s))
}

// RefineResult is what [FMN.Refine] found for one image.
type RefineResult struct {
	// Label and Pred are DeepFool's: the label (-1 if none) and the clean
	// prediction, the class the refinement moves away from.
	Label, Pred int
	// AdvPred is the prediction at the refined point, as a forward run of
	// the model gives it (Pred when censored).
	AdvPred int
	// Start says where the refinement started, StartMargin the norm of
	// that point's perturbation (+Inf for StartNone).
	Start       StartKind
	StartMargin float64
	// Margin is the norm of the smallest perturbation a forward run
	// confirmed to change the prediction: ≤ StartMargin, and +Inf when
	// censored.
	Margin float64
	// Censored is true when nothing flipped the image within the input
	// range; CensoredAt is then the largest radius tried, the radius
	// beyond which the margin lies as far as the attacks can tell, else 0.
	Censored   bool
	CensoredAt float64
	// Perturbation is the refined point minus the clean image, with
	// KeepPerturbation and unless censored, else nil.
	Perturbation []float32
}

// FMN refines margins with the fast minimum-norm attack (Pintor et al.,
// "Fast Minimum-norm Adversarial Attacks through Adaptive Norm
// Constraints", NeurIPS 2021), warm-started at DeepFool's adversarial
// points; see [FMN.Refine]. It is not safe for concurrent use.
type FMN struct {
	c   *Classifier
	opt FMNOptions
}

// NewFMN checks opt and returns a refinement attack on c.
func NewFMN(c *Classifier, opt FMNOptions) (*FMN, error) {
	if c == nil {
		return nil, ErrClosed
	}
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("attack: %s: %w", c.name, err)
	}
	return &FMN{c: c, opt: opt.withDefaults()}, nil
}

// Refine tightens the margins DeepFool found for the n images in x (pixels
// in the classifier's range): start holds DeepFool's n results, run with
// KeepPerturbation and the same norm. It returns one result per image, in
// order.
//
// Per batch of images:
//  1. Each image whose DeepFool result succeeded starts at its adversarial
//     point x₀ + δ (clipped), if a forward run confirms that its
//     prediction differs from Pred; that point is the best so far.
//  2. The others (DeepFool failed, or its point did not flip again) are
//     attacked by PGD on the logit gap f_j − f_Pred (j the best other
//     class; the cross-entropy's gradient is exactly 0 where the softmax
//     saturates), from x₀, with early stopping, at the radii
//     r_range·2^(i−R) for i = 1 … R (R = SearchRadii), where r_range is the
//     norm of a perturbation of hi − lo on every pixel; the first point a
//     forward run finds misclassified is their start. Images no radius
//     flips start at the closest of the constant images lo, (lo + hi)/2
//     and hi that a forward run classifies other than Pred (all lie within
//     r_range); if none, they have no start.
//  3. BisectSteps halvings of the segment [x₀, start] move the best point
//     toward the boundary.
//  4. Steps steps of FMN: at the current point x = x₀ + δ, the loss
//     ℓ = f_j − f_Pred, j the best other class (from the previous
//     scores), and its gradient g (one Jacobian run with one seed row);
//     the norm constraint ε shrinks to min(ε(1−γ), best) where x is
//     adversarial, grows to ε(1+γ) where it is not but an adversarial
//     point was seen, and is ‖δ‖ + |ℓ|/‖g‖_q (q dual) before any was;
//     then δ += α·g/‖g‖₂, is clipped to the range and projected onto the
//     ε-ball (the paper projects first, then clips, which stalls on
//     images with many pixels at the ends of the range). γ and α anneal
//     by a cosine.
//  5. Per image, the closest point the Jacobian runs' scores call
//     adversarial is kept, and every 10 steps (and after the last) run
//     forward again; only the points this forward run confirms replace the
//     best. The margin is the norm of the best point, never the attack's
//     own estimate.
//
// An image without a start may still be flipped by FMN's own steps; one
// that nothing flips is censored at r_max = ‖max(x₀ − lo, hi − x₀)‖, the
// largest perturbation the input range allows: the largest radius tried,
// since the search's balls beyond it are bounded by the range.
func (f *FMN) Refine(ctx context.Context, x []float32, start []DeepFoolResult) ([]RefineResult, error) {
	c := f.c
	n, err := c.checkInput(x, -1)
	if err != nil {
		return nil, err
	}
	if err := c.checkRange(x); err != nil {
		return nil, err
	}
	if len(start) != n {
		return nil, &ShapeError{Model: c.name, Msg: fmt.Sprintf("FMN: %d DeepFool results for %d images", len(start), n)}
	}
	for i, r := range start {
		switch {
		case r.Pred < 0 || r.Pred >= c.k:
			return nil, &ShapeError{Model: c.name, Msg: fmt.Sprintf("FMN: image %d: DeepFool's prediction %d is not one of the %d classes", i, r.Pred, c.k)}
		case r.Success && len(r.Perturbation) != c.d:
			return nil, &ShapeError{Model: c.name, Msg: fmt.Sprintf("FMN: image %d: DeepFool's perturbation has %d values, want %d (run DeepFool with KeepPerturbation)", i, len(r.Perturbation), c.d)}
		}
	}
	res := make([]RefineResult, n)
	b := min(f.opt.BatchSize, max(n, 1))
	runs := make([]*fmnRun, c.workers) // one per worker, made on its first batch
	progress := serialised(f.opt.Progress)
	err = parallel.Pieces(ctx, c.workers, n, b, func(ctx context.Context, w, s, e int) error {
		if runs[w] == nil {
			runs[w] = newFMNRun(f, b)
		}
		if err := runs[w].batch(ctx, x[s*c.d:e*c.d], start[s:e], res[s:e], s); err != nil {
			return err
		}
		report(progress, e-s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// fmnRun holds the buffers of one worker of a Refine call, reused between
// its batches.
type fmnRun struct {
	f       *FMN
	c       *Classifier
	opt     FMNOptions
	d, k    int
	m       int // images in the current batch
	first   int // the batch's first image in the caller's order
	x0      []float32
	ref     []int
	best    []float64 // norm of the best confirmed point, +Inf if none
	bestPt  []float32 // [b, d]
	cur     []float32 // [b, d]: the current point x₀ + δ
	eps     []float64
	seen    []bool // an adversarial point was seen (FMN's adv_found)
	other   []int  // the best other class at the last scores
	seeds   []float32
	scores  []float32
	jac     []float32
	fwd     []float32
	probe   []float32 // [b, d]: points to confirm, packed
	probeOf []int     // their images
	worst   []float64 // r_max per image
	delta   []float64 // [d]: the step's unprojected δ
	// The closest point per image that the Jacobian run's scores call
	// adversarial since the last confirmation, and its norm (+Inf: none).
	pend     []float32
	pendNorm []float64
	// The constant images lo, (lo + hi)/2 and hi, packed, and their
	// predictions, once constantStarts has run them.
	constant     []float32
	constantPred []int
}

func newFMNRun(f *FMN, b int) *fmnRun {
	c := f.c
	d, k := c.d, c.k
	return &fmnRun{
		f: f, c: c, opt: f.opt, d: d, k: k,
		ref: make([]int, b), best: make([]float64, b), eps: make([]float64, b), seen: make([]bool, b), other: make([]int, b),
		bestPt: make([]float32, b*d), cur: make([]float32, b*d), probe: make([]float32, b*d), probeOf: make([]int, b),
		seeds: make([]float32, b*k), scores: make([]float32, b*k), jac: make([]float32, b*d), fwd: make([]float32, b*k),
		worst: make([]float64, b), delta: make([]float64, d),
		pend: make([]float32, b*d), pendNorm: make([]float64, b),
	}
}

// batch refines the m images of x0, writing res; first is the index of
// the first in the caller's order.
func (r *fmnRun) batch(ctx context.Context, x0 []float32, start []DeepFoolResult, res []RefineResult, first int) error {
	d, lo, hi := r.d, r.c.lo, r.c.hi
	r.m, r.first, r.x0 = len(start), first, x0
	for i, s := range start {
		r.ref[i], r.best[i], r.eps[i], r.seen[i], r.pendNorm[i] = s.Pred, math.Inf(1), math.Inf(1), false, math.Inf(1)
		res[i] = RefineResult{Label: s.Label, Pred: s.Pred, AdvPred: s.Pred, StartMargin: math.Inf(1), Margin: math.Inf(1)}
		xi, cur := x0[i*d:(i+1)*d], r.cur[i*d:(i+1)*d]
		copy(cur, xi)
		if s.Success {
			for j, p := range s.Perturbation {
				cur[j] = min(max(xi[j]+p, lo), hi)
			}
		}
		var w float64
		for _, v := range xi {
			e := float64(max(v-lo, hi-v))
			if r.opt.Norm == L2 {
				w += e * e
			} else {
				w = max(w, e)
			}
		}
		if r.opt.Norm == L2 {
			w = math.Sqrt(w)
		}
		r.worst[i] = w
	}
	// 1. DeepFool's points, confirmed.
	if err := r.forward(r.fwd[:r.m*r.k], r.cur[:r.m*d], r.m); err != nil {
		return err
	}
	var search []int
	for i, s := range start {
		sc := r.fwd[i*r.k : (i+1)*r.k]
		r.other[i] = bestOther(sc, r.ref[i])
		if p := argmax(sc); s.Success && p != r.ref[i] {
			r.accept(i, r.cur[i*d:(i+1)*d], p, res)
			res[i].Start, res[i].StartMargin = StartDeepFool, r.best[i]
			continue
		}
		copy(r.cur[i*d:(i+1)*d], x0[i*d:(i+1)*d])
		search = append(search, i)
	}
	// 2. The PGD search where DeepFool failed.
	if err := r.search(ctx, search, res); err != nil {
		return err
	}
	// 3. Bisection toward the clean image.
	if err := r.bisect(ctx, res); err != nil {
		return err
	}
	// 4, 5. FMN.
	if err := r.descend(ctx, res); err != nil {
		return err
	}
	for i := range r.m {
		rr := &res[i]
		if math.IsInf(r.best[i], 1) {
			rr.Censored, rr.CensoredAt = true, r.worst[i]
			continue
		}
		rr.Margin = r.best[i]
		if r.opt.KeepPerturbation {
			p := make([]float32, d)
			for j, v := range r.bestPt[i*d : (i+1)*d] {
				p[j] = v - x0[i*d+j]
			}
			rr.Perturbation = p
		}
	}
	return nil
}

// bestOther returns the class other than ref with the highest score.
func bestOther(scores []float32, ref int) int {
	j := -1
	for k, v := range scores {
		if k != ref && (j < 0 || v > scores[j]) {
			j = k
		}
	}
	return j
}

// forward runs the forward graph on m points, naming the batch's images
// in errors.
func (r *fmnRun) forward(scores, x []float32, m int) error {
	if err := r.c.forward(scores, x, m, 0); err != nil {
		return r.imageErr(err, nil)
	}
	return nil
}

// imageErr turns the point numbers of a NonFiniteError into the caller's
// image numbers; of maps points to the batch's images (nil: the same).
func (r *fmnRun) imageErr(err error, of []int) error {
	var e *NonFiniteError
	if !errors.As(err, &e) {
		return err
	}
	e2 := *e
	if of != nil && e.Image < len(of) {
		e2.Image = of[e.Image]
	}
	e2.Image += r.first
	return &e2
}

// accept makes pt, which a forward run classified pred, image i's best
// point if it is closer than the best so far.
func (r *fmnRun) accept(i int, pt []float32, pred int, res []RefineResult) bool {
	d := r.d
	dist := distance(pt, r.x0[i*d:(i+1)*d], r.opt.Norm)
	if !(dist < r.best[i]) {
		return false
	}
	r.best[i] = dist
	copy(r.bestPt[i*d:(i+1)*d], pt)
	res[i].AdvPred = pred
	return true
}

// confirm runs the q points packed in r.probe (of the images r.probeOf)
// forward and accepts those whose prediction differs from the reference;
// it reports in ok which were accepted.
func (r *fmnRun) confirm(q int, res []RefineResult, ok []bool) error {
	if q == 0 {
		return nil
	}
	d, k := r.d, r.k
	if err := r.c.forward(r.fwd[:q*k], r.probe[:q*d], q, 0); err != nil {
		return r.imageErr(err, r.probeOf[:q])
	}
	for p := range q {
		i := r.probeOf[p]
		pred := argmax(r.fwd[p*k : (p+1)*k])
		ok[p] = pred != r.ref[i] && r.accept(i, r.probe[p*d:(p+1)*d], pred, res)
	}
	return nil
}

// search runs PGD at growing radius on the images in idx, from their clean
// points, until each flips or the radii run out; a flipped image's point,
// once a forward run confirms it, is its start. The radii, r_range·2^(i−R)
// for i = 1 … R with r_range the norm of a perturbation of hi − lo on
// every pixel, are the same for every image, so that the images of a
// batch share each PGD run; beyond an image's own r_max the input range
// bounds the ball.
//
// The PGD ascends the logit gap ℓ = f_j − f_Pred (j the best other class at
// the last scores), the loss of FMN's own steps, not the cross-entropy: on
// a confidently classified image the softmax is one-hot in float32 and the
// cross-entropy's gradient exactly 0, so that sign steps never move, while
// the logit gap's gradient does not vanish with the confidence. Steps are
// Madry et al.'s (2.5·ε/steps, sign steps for L∞), without random start,
// and an image freezes at the first point its scores call adversarial.
func (r *fmnRun) search(ctx context.Context, idx []int, res []RefineResult) error {
	if len(idx) == 0 || r.opt.SearchSteps == 0 {
		return nil
	}
	d, k := r.d, r.k
	adv := make([]float32, len(idx)*d)
	x0 := make([]float32, len(idx)*d)
	other := make([]int, len(idx))
	done := make([]bool, len(idx))
	ok := make([]bool, len(idx))
	full := float64(r.c.hi - r.c.lo)
	if r.opt.Norm == L2 {
		full *= math.Sqrt(float64(d))
	}
	for step := r.opt.SearchRadii - 1; step >= 0 && len(idx) > 0; step-- {
		m := len(idx)
		for p, i := range idx {
			copy(x0[p*d:(p+1)*d], r.x0[i*d:(i+1)*d])
			other[p], done[p] = r.other[i], false
		}
		copy(adv[:m*d], x0[:m*d])
		pgd, err := NewPGD(r.c, PGDOptions{Norm: r.opt.Norm, Eps: math.Ldexp(full, -step),
			PGDParams: PGDParams{Steps: r.opt.SearchSteps}})
		if err != nil {
			return err
		}
		for range r.opt.SearchSteps {
			if err := ctx.Err(); err != nil {
				return err
			}
			seeds := r.seeds[:m*k]
			clear(seeds)
			for p, i := range idx {
				seeds[p*k+other[p]] = 1
				seeds[p*k+r.ref[i]] = -1
			}
			if err := r.c.seededJacobian(r.scores[:m*k], r.jac[:m*d], adv[:m*d], m, seeds, 1, 0); err != nil {
				return r.imageErr(err, idx)
			}
			active := 0
			for p, i := range idx {
				sc := r.scores[p*k : (p+1)*k]
				if done[p] || argmax(sc) != r.ref[i] {
					done[p] = true
					continue
				}
				other[p] = bestOther(sc, r.ref[i])
				active++
				pgd.move(adv[p*d:(p+1)*d], x0[p*d:(p+1)*d], r.jac[p*d:(p+1)*d])
			}
			if active == 0 {
				break
			}
		}
		for p, i := range idx {
			copy(r.cur[i*d:(i+1)*d], adv[p*d:(p+1)*d])
			r.probeOf[p] = i
		}
		copy(r.probe[:m*d], adv[:m*d])
		if err := r.confirm(m, res, ok); err != nil {
			return err
		}
		kept := idx[:0]
		for p, i := range idx {
			if ok[p] {
				res[i].Start, res[i].StartMargin = StartSearch, r.best[i]
				continue
			}
			kept = append(kept, i)
		}
		idx = kept
	}
	return r.constantStarts(idx, res)
}

// constantStarts gives the images in idx, which no PGD run flipped, as
// start the closest of the constant images lo, (lo + hi)/2 and hi that the
// model classifies other than Pred. They lie within the search's largest
// radius, which spans the whole input range in either norm, so that an
// image ends censored only if they too keep its class. They catch models
// that the search cannot move: a PGD-trained MLP can classify as its class
// a region where every ReLU is off and the gradient is exactly 0, which
// PGD's steps enter and never leave (the MNIST MLP of make demo, digits
// 1). The three are run forward once per Refine call, so the start of an
// image does not depend on the batch.
func (r *fmnRun) constantStarts(idx []int, res []RefineResult) error {
	if len(idx) == 0 {
		return nil
	}
	d, k := r.d, r.k
	if r.constant == nil {
		lo, hi := r.c.lo, r.c.hi
		pts := make([]float32, 3*d)
		for j := range d {
			pts[j], pts[d+j], pts[2*d+j] = lo, lo+(hi-lo)/2, hi
		}
		sc := make([]float32, 3*k)
		if err := r.c.forward(sc, pts, 3, 0); err != nil {
			return fmt.Errorf("the constant start images: %w", err)
		}
		r.constant, r.constantPred = pts, []int{argmax(sc[:k]), argmax(sc[k : 2*k]), argmax(sc[2*k:])}
	}
	for _, i := range idx {
		for c, pred := range r.constantPred {
			if pred != r.ref[i] && r.accept(i, r.constant[c*d:(c+1)*d], pred, res) {
				res[i].Start, res[i].StartMargin = StartSearch, r.best[i]
			}
		}
	}
	return nil
}

// bisect halves, BisectSteps times, the segment between each image's clean
// point and its best point, keeping the confirmed half.
func (r *fmnRun) bisect(ctx context.Context, res []RefineResult) error {
	d := r.d
	var idx []int
	for i := range r.m {
		if !math.IsInf(r.best[i], 1) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	end := make([]float32, len(idx)*d)
	for p, i := range idx {
		copy(end[p*d:(p+1)*d], r.bestPt[i*d:(i+1)*d])
	}
	tlo, thi := make([]float64, len(idx)), make([]float64, len(idx))
	ok := make([]bool, len(idx))
	for p := range thi {
		thi[p] = 1
	}
	lo, hi := r.c.lo, r.c.hi
	for range r.opt.BisectSteps {
		if err := ctx.Err(); err != nil {
			return err
		}
		for p, i := range idx {
			t := (tlo[p] + thi[p]) / 2
			x0, e := r.x0[i*d:(i+1)*d], end[p*d:(p+1)*d]
			probe := r.probe[p*d : (p+1)*d]
			for j, v := range x0 {
				probe[j] = min(max(float32(float64(v)+t*(float64(e[j])-float64(v))), lo), hi)
			}
			r.probeOf[p] = i
		}
		if err := r.confirm(len(idx), res, ok); err != nil {
			return err
		}
		for p := range idx {
			t := (tlo[p] + thi[p]) / 2
			if ok[p] {
				thi[p] = t
			} else {
				tlo[p] = t
			}
		}
	}
	return nil
}

// descend takes the FMN steps on every image of the batch, from its best
// point (or, without one, from its last search point).
func (r *fmnRun) descend(ctx context.Context, res []RefineResult) error {
	m, d, k := r.m, r.d, r.k
	for i := range m {
		if !math.IsInf(r.best[i], 1) {
			copy(r.cur[i*d:(i+1)*d], r.bestPt[i*d:(i+1)*d])
		}
	}
	ok := make([]bool, m)
	steps := r.opt.Steps
	scale := float64(r.c.hi - r.c.lo)
	alpha0 := r.opt.Step * scale
	for step := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		cosine := (1 + math.Cos(math.Pi*float64(step)/float64(steps))) / 2
		gamma := r.opt.GammaFinal + (r.opt.GammaInit-r.opt.GammaFinal)*cosine
		alpha := alpha0/100 + (alpha0-alpha0/100)*cosine
		seeds := r.seeds[:m*k]
		clear(seeds)
		for i := range m {
			seeds[i*k+r.other[i]] = 1
			seeds[i*k+r.ref[i]] = -1
		}
		if err := r.c.seededJacobian(r.scores[:m*k], r.jac[:m*d], r.cur[:m*d], m, seeds, 1, 0); err != nil {
			return r.imageErr(err, nil)
		}
		for i := range m {
			cur := r.cur[i*d : (i+1)*d]
			if argmax(r.scores[i*k:(i+1)*k]) == r.ref[i] {
				continue
			}
			r.seen[i] = true
			if dn := distance(cur, r.x0[i*d:(i+1)*d], r.opt.Norm); dn < r.bound(i) {
				copy(r.pend[i*d:(i+1)*d], cur)
				r.pendNorm[i] = dn
			}
		}
		if (step+1)%fmnConfirmEvery == 0 {
			if err := r.confirmPending(res, ok); err != nil {
				return err
			}
		}
		for i := range m {
			r.step(i, gamma, alpha)
		}
	}
	if err := r.confirmPending(res, ok); err != nil {
		return err
	}
	// The last step's points, not yet scored.
	if err := r.forward(r.fwd[:m*k], r.cur[:m*d], m); err != nil {
		return err
	}
	for i := range m {
		if p := argmax(r.fwd[i*k : (i+1)*k]); p != r.ref[i] {
			r.accept(i, r.cur[i*d:(i+1)*d], p, res)
		}
	}
	return nil
}

// bound returns the smallest norm at which image i was seen adversarial:
// its best confirmed point's, or a smaller pending one's. FMN's ε follows
// it; the margin follows only the confirmed points.
func (r *fmnRun) bound(i int) float64 { return min(r.best[i], r.pendNorm[i]) }

// confirmPending runs the pending points forward, accepts those that flip,
// and clears them.
func (r *fmnRun) confirmPending(res []RefineResult, ok []bool) error {
	d, q := r.d, 0
	for i := range r.m {
		if math.IsInf(r.pendNorm[i], 1) {
			continue
		}
		copy(r.probe[q*d:(q+1)*d], r.pend[i*d:(i+1)*d])
		r.probeOf[q] = i
		q++
		r.pendNorm[i] = math.Inf(1)
	}
	return r.confirm(q, res, ok)
}

// step updates image i's norm constraint from the scores and gradient of
// the last Jacobian run, then takes one FMN step of length alpha.
func (r *fmnRun) step(i int, gamma, alpha float64) {
	d, k := r.d, r.k
	sc := r.scores[i*k : (i+1)*k]
	g := r.jac[i*d : (i+1)*d]
	x0, cur := r.x0[i*d:(i+1)*d], r.cur[i*d:(i+1)*d]
	ref := r.ref[i]
	dnorm := distance(cur, x0, r.opt.Norm)
	other := bestOther(sc, ref)
	// The loss of the seeded class; the next step seeds the best other
	// class at this point.
	loss := float64(sc[r.other[i]]) - float64(sc[ref])
	r.other[i] = other
	switch {
	case argmax(sc) != ref:
		r.eps[i] = min(r.eps[i]*(1-gamma), r.bound(i))
	case r.seen[i]:
		r.eps[i] *= 1 + gamma
	default:
		r.eps[i] = dnorm + math.Abs(loss)/max(dualNorm(g, r.opt.Norm), 1e-12)
	}
	r.eps[i] = min(r.eps[i], r.worst[i])
	gn := dualNorm(g, L2)
	if gn == 0 {
		return
	}
	s := alpha / gn
	lo, hi := r.c.lo, r.c.hi
	eps := r.eps[i]
	if r.opt.Norm == LInf {
		// The ε-box and the range are boxes: clamping to one, then the
		// other, projects onto their intersection.
		e := float32(eps)
		for j, v := range x0 {
			p := float32(float64(cur[j]-v) + s*float64(g[j]))
			cur[j] = min(max(v+min(max(p, -e), e), lo), hi)
		}
		return
	}
	// Clip, then project: the clipped δ scaled toward x₀ stays in the
	// box, and ‖δ‖ reaches ε. The paper's order (project, then clip)
	// stalls where the clip undoes the step on saturated pixels: the point
	// settles inside the ball, short of the boundary, with the same ε
	// every step (bench/fmn/README.md).
	delta := r.delta
	var sum float64
	for j, v := range x0 {
		p := float64(min(max(float32(float64(cur[j])+s*float64(g[j])), lo), hi)) - float64(v)
		sum += p * p
		delta[j] = p
	}
	shrink := 1.0
	if n := math.Sqrt(sum); n > eps {
		shrink = eps / n
	}
	for j, v := range x0 {
		cur[j] = min(max(v+float32(shrink*delta[j]), lo), hi)
	}
}
