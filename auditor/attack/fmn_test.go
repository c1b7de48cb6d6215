package attack

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// deepFoolThenFMN runs DeepFool (with perturbations kept) and the FMN
// refinement on x.
func deepFoolThenFMN(t *testing.T, c *Classifier, x []float32, df DeepFoolOptions, fo FMNOptions) ([]DeepFoolResult, []RefineResult) {
	t.Helper()
	df.KeepPerturbation = true
	start, err := DeepFool(context.Background(), c, x, nil, df)
	if err != nil {
		t.Fatal(err)
	}
	return start, refineFMN(t, c, x, start, fo)
}

// refineFMN runs the FMN refinement on x from the DeepFool results start.
func refineFMN(t *testing.T, c *Classifier, x []float32, start []DeepFoolResult, fo FMNOptions) []RefineResult {
	t.Helper()
	f, err := NewFMN(c, fo)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Refine(context.Background(), x, start)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkRefined fails t unless every uncensored refined point lies in the
// range, has the norm of its margin, and is classified other than Pred by
// a forward run of its own; it returns how many were checked.
func checkRefined(t *testing.T, c *Classifier, x []float32, res []RefineResult, norm Norm) int {
	t.Helper()
	d := c.SampleSize()
	lo, hi := c.Range()
	var pts []float32
	var idx []int
	for i, r := range res {
		if r.Censored {
			continue
		}
		pt := make([]float32, d)
		for j, p := range r.Perturbation {
			pt[j] = x[i*d+j] + p
			if pt[j] < lo || pt[j] > hi {
				t.Fatalf("image %d: refined pixel %d is %v, outside [%v, %v]", i, j, pt[j], lo, hi)
			}
		}
		// The perturbation is the refined point minus x₀ in float32,
		// which may round: allow a relative 1e-6.
		if got := distance(pt, x[i*d:(i+1)*d], norm); math.Abs(got-r.Margin) > 1e-6*r.Margin {
			t.Errorf("image %d: the refined point is at %v, the margin is %v", i, got, r.Margin)
		}
		pts = append(pts, pt...)
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return 0
	}
	pred, err := c.Predict(pts, len(idx))
	if err != nil {
		t.Fatal(err)
	}
	for p, i := range idx {
		if pred[p] == res[i].Pred || pred[p] != res[i].AdvPred {
			t.Errorf("image %d: the refined point is classified %d; clean %d, reported %d", i, pred[p], res[i].Pred, res[i].AdvPred)
		}
	}
	return len(idx)
}

// TestFMNFixtures refines DeepFool's margins on the PyTorch-exported
// fixtures: every refined margin is at most DeepFool's, every refined
// point flips when run again, and the mean margin drops.
func TestFMNFixtures(t *testing.T) {
	for _, name := range []string{"mlp", "cnn"} {
		for _, norm := range []Norm{L2, LInf} {
			t.Run(name+"/"+norm.String(), func(t *testing.T) {
				m, xa := fixture(t, name)
				c := newClassifier(t, m, Options{Name: name + ".onnx", Threads: 2})
				const n = 24
				x := tile(xa.Data, c.SampleSize(), n, 0.05, 1)
				fo := DefaultFMNOptions(norm)
				fo.KeepPerturbation, fo.Steps, fo.BatchSize = true, 40, 16
				done := 0
				fo.Progress = ProgressFunc(func(k int) { done += k })
				start, res := deepFoolThenFMN(t, c, x, DefaultDeepFoolOptions(norm), fo)
				if done != n {
					t.Errorf("progress counted %d images, want %d", done, n)
				}
				var mean, meanRef float64
				for i, r := range res {
					s := start[i]
					if !s.Success || r.Censored || r.Start != StartDeepFool || r.Pred != s.Pred {
						t.Fatalf("image %d: DeepFool %+v, refined %+v: want a refinement from DeepFool's point", i, s, r)
					}
					if !(r.Margin > 0) || r.Margin > r.StartMargin || r.Margin > s.Margin*(1+1e-6) {
						t.Errorf("image %d: refined margin %v, start %v, DeepFool %v; want 0 < refined ≤ both", i, r.Margin, r.StartMargin, s.Margin)
					}
					mean += s.Margin / n
					meanRef += r.Margin / n
				}
				if got := checkRefined(t, c, x, res, norm); got != n {
					t.Errorf("%d refined points checked, want %d", got, n)
				}
				if !(meanRef < mean) {
					t.Errorf("mean refined margin %v, DeepFool's %v: no gain", meanRef, mean)
				}
				t.Logf("mean margin: DeepFool %.5g, refined %.5g (%.2f %% lower)", mean, meanRef, 100*(1-meanRef/mean))
			})
		}
	}
}

// TestFMNLinearExact checks the refined margins of linear models against
// the closed form: the distance from x₀ to the nearest boundary is
// d* = min_k |Δf_k| / ‖Δw_k‖_q (q = 2 for L2, 1 for L∞), the range wide
// enough that the box never binds. FMN's best point lies above d* by at
// most what its last ε steps resolve: with 25 steps the last two γ are
// below 0.002, so a relative 2e-3 bounds the gap (1e-3 measured); float32
// rounding of the points (below 1e-6 relative here) is far smaller.
// DeepFool's start overshoots by 2 %.
func TestFMNLinearExact(t *testing.T) {
	const d, n, tol = 20, 60, 2e-3
	for ci, norm := range []Norm{L2, LInf} {
		t.Run(norm.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 13))
			lin := newLinear(rng, 5, d)
			c := newClassifier(t, lin.model(), Options{Name: "linear", Lo: -1000, Hi: 1000, Threads: 1})
			x := make([]float32, n*d)
			for i := range x {
				x[i] = float32(2*rng.Float64() - 1)
			}
			fo := DefaultFMNOptions(norm)
			fo.KeepPerturbation = true
			start, res := deepFoolThenFMN(t, c, x, DefaultDeepFoolOptions(norm), fo)
			checkRefined(t, c, x, res, norm)
			var worst, gain float64
			for i, r := range res {
				want := linearDistance(lin, x[i*d:(i+1)*d], norm)
				rel := (r.Margin - want) / want
				if rel < -1e-5 || rel > tol {
					t.Errorf("image %d: refined margin %.7g, DeepFool's %.7g, exact %.7g: relative error %.2g", i, r.Margin, start[i].Margin, want, rel)
				}
				worst = max(worst, rel)
				gain += (start[i].Margin - r.Margin) / start[i].Margin / n
			}
			t.Logf("largest relative excess over the exact distance %.2g; mean gain over DeepFool %.2f %%", worst, 100*gain)
		})
	}
}

// linearDistance returns the exact distance from x to the decision
// boundary of the linear model's prediction at x, in float64.
func linearDistance(l *linear, x []float32, norm Norm) float64 {
	f := l.logits(x)
	ref := 0
	for k := range f {
		if f[k] > f[ref] {
			ref = k
		}
	}
	best := math.Inf(1)
	for k := range l.k {
		if k == ref {
			continue
		}
		var q float64
		for j := range l.d {
			dw := l.w[k*l.d+j] - l.w[ref*l.d+j]
			if norm == L2 {
				q += dw * dw
			} else {
				q += math.Abs(dw)
			}
		}
		if norm == L2 {
			q = math.Sqrt(q)
		}
		best = min(best, (f[ref]-f[k])/q)
	}
	return best
}

// TestFMNSearchAndBatches starves DeepFool (five steps, three for L∞, no overshoot, no
// retries) so that some images fail: the refinement must find them a start
// by its PGD search and flip them, and its results must not depend on the
// batch size nor change from one run to the next.
func TestFMNSearchAndBatches(t *testing.T) {
	m, xa := fixture(t, "cnn")
	c := newClassifier(t, m, Options{Name: "cnn.onnx", Threads: 2})
	const n = 20
	x := tile(xa.Data, c.SampleSize(), n, 0.05, 3)
	for _, norm := range []Norm{L2, LInf} {
		t.Run(norm.String(), func(t *testing.T) {
			df := DefaultDeepFoolOptions(norm)
			df.MaxIter, df.Overshoot, df.Retries = 5, 0, 0
			if norm == LInf {
				df.MaxIter = 3 // L∞ DeepFool takes fewer steps
			}
			var runs [][]RefineResult
			for _, batch := range []int{64, 7, 7} {
				fo := DefaultFMNOptions(norm)
				fo.Steps, fo.BatchSize, fo.KeepPerturbation = 20, batch, true
				start, res := deepFoolThenFMN(t, c, x, df, fo)
				searched := 0
				for i, r := range res {
					if !start[i].Success {
						if r.Start != StartSearch || !(r.StartMargin < math.Inf(1)) {
							t.Errorf("image %d: DeepFool failed, refinement %+v: want a start from the search", i, r)
						}
						searched++
					}
				}
				if searched == 0 {
					t.Fatal("DeepFool flipped every image; the test needs failures")
				}
				if got := checkRefined(t, c, x, res, norm); got != n {
					t.Errorf("%d of %d images refined", got, n)
				}
				t.Logf("batch %d: %d images started from the search", batch, searched)
				runs = append(runs, res)
			}
			for _, r := range runs[1:] {
				if !reflect.DeepEqual(r, runs[0]) {
					t.Errorf("results differ between runs or batch sizes:\n%+v\n%+v", runs[0], r)
				}
			}
		})
	}
}

// uniformImages returns size pixels drawn uniformly from [0, top), from a
// generator seeded with seed.
func uniformImages(size int, top float32, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	x := make([]float32, size)
	for i := range x {
		x[i] = top * rng.Float32()
	}
	return x
}

// constantModel returns a model whose scores do not depend on its input:
// logits = 0·x + b.
func constantModel(d int) *onnxpb.ModelProto {
	return model(&onnxpb.GraphProto{
		Name:        proto.String("constant"),
		Input:       []*onnxpb.ValueInfoProto{valueInfo("x", "N", d)},
		Output:      []*onnxpb.ValueInfoProto{valueInfo("logits", "N", 3)},
		Initializer: []*onnxpb.TensorProto{onnxgrad.NewTensorFloat32("W", []int64{3, int64(d)}, make([]float32, 3*d)), onnxgrad.NewTensorFloat32("b", []int64{3}, []float32{0.5, 2, -1})},
		Node:        []*onnxpb.NodeProto{node("Gemm", []string{"x", "W", "b"}, "logits", attrInt("transB", 1))},
	})
}

// TestFMNCensored refines a model that nothing can flip: every image is
// censored at the largest radius the range allows, ‖max(x₀ − lo, hi − x₀)‖.
func TestFMNCensored(t *testing.T) {
	const d, n = 6, 5
	c := newClassifier(t, constantModel(d), Options{Name: "constant", Threads: 1})
	x := uniformImages(n*d, 1, 4)
	for _, norm := range []Norm{L2, LInf} {
		fo := DefaultFMNOptions(norm)
		fo.Steps, fo.KeepPerturbation = 10, true
		start, res := deepFoolThenFMN(t, c, x, DefaultDeepFoolOptions(norm), fo)
		for i, r := range res {
			var want float64
			for _, v := range x[i*d : (i+1)*d] {
				e := float64(max(v, 1-v))
				if norm == L2 {
					want += e * e
				} else {
					want = max(want, e)
				}
			}
			if norm == L2 {
				want = math.Sqrt(want)
			}
			if start[i].Success || !r.Censored || math.Abs(r.CensoredAt-want) > 1e-12 || !math.IsInf(r.Margin, 1) ||
				r.Start != StartNone || r.AdvPred != r.Pred || r.Pred != 1 || r.Perturbation != nil {
				t.Errorf("%v, image %d: DeepFool %+v, refined %+v; want censored at %v", norm, i, start[i], r, want)
			}
		}
	}
}

// TestFMNErrors checks the options and arguments Refine refuses.
func TestFMNErrors(t *testing.T) {
	for _, o := range []FMNOptions{
		{},
		{Norm: L2, Steps: -1},
		{Norm: LInf, Step: math.NaN()},
		{Norm: L2, GammaInit: 1},
		{Norm: L2, GammaFinal: -0.1},
		{Norm: L2, BisectSteps: -1},
		{Norm: L2, SearchRadii: 61},
		{Norm: L2, BatchSize: -2},
	} {
		if err := o.Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: got %v, want ErrOptions", o, err)
		}
	}
	if err := DefaultFMNOptions(LInf).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	m, xa := fixture(t, "mlp")
	c := newClassifier(t, m, Options{Threads: 1})
	f, err := NewFMN(c, DefaultFMNOptions(L2))
	if err != nil {
		t.Fatal(err)
	}
	start, err := DeepFool(context.Background(), c, xa.Data, nil, DefaultDeepFoolOptions(L2))
	if err != nil {
		t.Fatal(err)
	}
	var se *ShapeError
	if _, err := f.Refine(context.Background(), xa.Data, start[1:]); !errors.As(err, &se) {
		t.Errorf("too few results: got %v, want a ShapeError", err)
	}
	if _, err := f.Refine(context.Background(), xa.Data, start); !errors.As(err, &se) {
		t.Errorf("results without perturbations: got %v, want a ShapeError", err)
	}
}

// TestFMNCancel checks that a cancelled context stops the refinement.
func TestFMNCancel(t *testing.T) {
	m, xa := fixture(t, "mlp")
	c := newClassifier(t, m, Options{Threads: 1})
	df := DefaultDeepFoolOptions(L2)
	df.KeepPerturbation = true
	start, err := DeepFool(context.Background(), c, xa.Data, nil, df)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opt := DefaultFMNOptions(L2)
	opt.BatchSize = 1
	opt.Progress = ProgressFunc(func(int) { cancel() })
	f, err := NewFMN(c, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Refine(ctx, xa.Data, start); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestFMNSearchSaturated gives the search images whose softmax is one-hot
// in float32: a linear model whose logit gaps at the clean images exceed
// 5,000, so that the cross-entropy's gradient is exactly 0 and PGD on it
// never moves (the search that used it left every image without a start).
// The search on the logit gap must find every image a start, in both
// norms; the boundary, Σx = 2, lies inside the range.
func TestFMNSearchSaturated(t *testing.T) {
	const d, n = 6, 8
	lin := &linear{k: 3, d: d, w: make([]float64, 3*d), b: []float64{20000, 0, -10000}}
	for j := range d {
		lin.w[d+j] = 10000 // f₁ − f₀ = 10⁴·(Σx − 2)
	}
	c := newClassifier(t, lin.model(), Options{Name: "saturated", Threads: 1})
	x := uniformImages(n*d, 0.25, 5)
	grad := make([]float32, len(x))
	if _, err := c.LossGradient(grad, x, make([]int, n)); err != nil {
		t.Fatal(err)
	}
	for j, g := range grad {
		if g != 0 {
			t.Fatalf("the cross-entropy's gradient is %v at value %d: the model does not saturate", g, j)
		}
	}
	failed := make([]DeepFoolResult, n) // DeepFool failed on every image
	for _, norm := range []Norm{L2, LInf} {
		fo := DefaultFMNOptions(norm)
		fo.KeepPerturbation = true
		res := refineFMN(t, c, x, failed, fo)
		for i, r := range res {
			if r.Censored || r.Start != StartSearch || r.AdvPred != 1 || !(r.Margin <= r.StartMargin) {
				t.Errorf("%v, image %d: refined %+v; want a start from the search, flipped to class 1", norm, i, r)
			}
		}
		if got := checkRefined(t, c, x, res, norm); got != n {
			t.Errorf("%v: %d of %d images refined", norm, got, n)
		}
	}
}

// deadZoneModel returns a ReLU model whose scores are constant, and class
// 0, where Σx < 3: logits = (0.1, 10·relu(Σx − 3)). There every gradient
// is exactly 0; the all-hi image (Σx = d) is class 1.
func deadZoneModel(d int) *onnxpb.ModelProto {
	ones := make([]float32, d)
	for j := range ones {
		ones[j] = 1
	}
	return model(&onnxpb.GraphProto{
		Name:   proto.String("deadzone"),
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", "N", d)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("logits", "N", 2)},
		Initializer: []*onnxpb.TensorProto{
			onnxgrad.NewTensorFloat32("W1", []int64{1, int64(d)}, ones), onnxgrad.NewTensorFloat32("b1", []int64{1}, []float32{-3}),
			onnxgrad.NewTensorFloat32("W2", []int64{2, 1}, []float32{0, 10}), onnxgrad.NewTensorFloat32("b2", []int64{2}, []float32{0.1, 0}),
		},
		Node: []*onnxpb.NodeProto{
			node("Gemm", []string{"x", "W1", "b1"}, "h", attrInt("transB", 1)),
			node("Relu", []string{"h"}, "r"),
			node("Gemm", []string{"r", "W2", "b2"}, "logits", attrInt("transB", 1)),
		},
	})
}

// TestFMNSearchDeadZone refines images in a region where the model's
// gradient is exactly 0 (as PGD-trained MLPs have, where every ReLU is
// off): DeepFool and the PGD search cannot move, but the all-hi image lies
// within the search's largest radius and flips the class, so no image may
// end censored; the refined point lies on the segment toward it or closer.
func TestFMNSearchDeadZone(t *testing.T) {
	const d, n = 6, 5
	c := newClassifier(t, deadZoneModel(d), Options{Name: "deadzone", Threads: 1})
	x := uniformImages(n*d, 0.4, 6) // Σx < 2.4
	hi := make([]float32, d)
	for j := range hi {
		hi[j] = 1
	}
	for _, norm := range []Norm{L2, LInf} {
		var runs [][]RefineResult
		for _, batch := range []int{64, 2} {
			fo := DefaultFMNOptions(norm)
			fo.KeepPerturbation, fo.BatchSize = true, batch
			start, res := deepFoolThenFMN(t, c, x, DefaultDeepFoolOptions(norm), fo)
			for i, r := range res {
				toHi := distance(x[i*d:(i+1)*d], hi, norm)
				if start[i].Success || r.Censored || r.Start != StartSearch || r.AdvPred != 1 || !(r.StartMargin <= toHi) || !(r.Margin <= r.StartMargin) {
					t.Errorf("%v, image %d: DeepFool %+v, refined %+v; want a start from the all-hi image, at most %v away", norm, i, start[i], r, toHi)
				}
			}
			if got := checkRefined(t, c, x, res, norm); got != n {
				t.Errorf("%v: %d of %d images refined", norm, got, n)
			}
			runs = append(runs, res)
		}
		if !reflect.DeepEqual(runs[0], runs[1]) {
			t.Errorf("%v: results differ between batch sizes:\n%+v\n%+v", norm, runs[0], runs[1])
		}
	}
}
