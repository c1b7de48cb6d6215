package attack

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// eps32 is the float32 machine epsilon, 2^-23.
const eps32 = 1.0 / (1 << 23)

// TestDeepFoolLinearExact checks DeepFool on linear models against the
// closed form: from x₀ the nearest boundary of the candidates is at
// distance d* = min_k |Δf_k| / ‖Δw_k‖_q (q = 2 for L2, 1 for L∞), with
// Δf_k = f_k − f_k̂ and Δw_k = w_k − w_k̂. DeepFool's first step goes
// exactly there (plus 1e-4) and, with the overshoot, across: one step, and
// a perturbation (1 + overshoot)·(d* + 1e-4)·u with ‖u‖ = 1 (u = Δw/‖Δw‖₂
// for L2, sign(Δw) for L∞), up to Foolbox's 1e-8 guard, which changes d*
// by a relative 1e-8/‖Δw‖ (‖Δw‖ ≈ 6 here: below 2e-9, ignored).
func TestDeepFoolLinearExact(t *testing.T) {
	const d = 20
	cases := []struct {
		k, candidates int
		norm          Norm
		overshoot     float64
	}{
		{k: 3, norm: L2, overshoot: 0.02},
		{k: 3, norm: LInf, overshoot: 0.02},
		{k: 10, norm: L2, overshoot: 0.02},
		{k: 10, norm: LInf, overshoot: 0.02},
		{k: 10, candidates: 4, norm: L2, overshoot: 0.02},
		{k: 10, candidates: 4, norm: LInf, overshoot: 0.02},
		{k: 10, norm: L2, overshoot: 0.5},
	}
	for ci, tc := range cases {
		t.Run(tc.norm.String()+"/K"+itoa(tc.k)+"/cand"+itoa(tc.candidates)+"/os"+ftoa(tc.overshoot), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 11))
			lin := newLinear(rng, tc.k, d)
			// The range is wide enough that clipping never binds: the
			// points lie in [-1, 1] and the distances are below 10.
			c := newClassifier(t, lin.model(), Options{Name: "linear", Lo: -1000, Hi: 1000, Threads: 1})
			const n = 300
			x := make([]float32, n*d)
			for i := range x {
				x[i] = float32(2*rng.Float64() - 1)
			}
			opt := DefaultDeepFoolOptions(tc.norm)
			opt.Candidates, opt.Overshoot, opt.Retries = tc.candidates, tc.overshoot, 0
			res, err := DeepFool(context.Background(), c, x, nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			var maxRel, maxAbs float64
			checked := 0
			for i, r := range res {
				xi := x[i*d : (i+1)*d]
				f := lin.logits(xi)
				order := make([]int, tc.k)
				for j := range order {
					order[j] = j
				}
				slices.SortStableFunc(order, func(p, q int) int { return cmp.Compare(f[q], f[p]) })
				if f[order[0]]-f[order[1]] < 1e-3 {
					continue // a near tie: float32 may pick the other class
				}
				cands := order[1:]
				if tc.candidates > 0 {
					cands = order[1:tc.candidates]
				}
				ref := order[0]
				want, scale := math.Inf(1), 0.0
				for _, k := range cands {
					var q, s float64
					for j, v := range xi {
						dw := lin.w[k*d+j] - lin.w[ref*d+j]
						if tc.norm == L2 {
							q += dw * dw
						} else {
							q += math.Abs(dw)
						}
						s += (math.Abs(lin.w[k*d+j]) + math.Abs(lin.w[ref*d+j])) * math.Abs(float64(v))
					}
					if tc.norm == L2 {
						q = math.Sqrt(q)
					}
					want = min(want, math.Abs(f[k]-f[ref])/q)
					// The float32 logits are off by up to about
					// eps32 · Σ|w·x| + |b| each.
					scale = max(scale, (s+math.Abs(lin.b[k])+math.Abs(lin.b[ref]))/q)
				}
				if r.Pred != ref || !r.Success || r.Iterations != 1 || r.Retries != 0 || r.AdvPred == ref {
					t.Fatalf("image %d: %+v; want prediction %d, success after 1 step", i, r, ref)
				}
				got := r.Margin/(1+tc.overshoot) - stepBonus
				// Tolerance: the float32 logits' rounding (8·eps32 of
				// their scale, over ‖Δw‖) and the float32 perturbed
				// image (each pixel rounded: 8·eps32 of the distance,
				// plus eps32 per pixel of |x| ≤ 1 in the norm).
				tol := 8*eps32*scale + 8*eps32*want + 2*eps32*math.Sqrt(d)
				if e := math.Abs(got - want); e > tol {
					t.Errorf("image %d: distance %.9g (margin %.9g), want %.9g: error %.3g > tolerance %.3g", i, got, r.Margin, want, e, tol)
				}
				maxAbs = max(maxAbs, math.Abs(got-want))
				maxRel = max(maxRel, math.Abs(got-want)/want)
				checked++
			}
			if checked < n*9/10 {
				t.Fatalf("only %d of %d points checked", checked, n)
			}
			t.Logf("%d points: max abs error %.3g, max relative error %.3g", checked, maxAbs, maxRel)
		})
	}
}

func itoa(i int) string { return string(rune('0'+i/10%10)) + string(rune('0'+i%10)) }
func ftoa(f float64) string {
	return itoa(int(math.Round(f * 100)))
}

// TestDeepFoolFixtures runs DeepFool on PyTorch-exported models: every
// image flips, margins are positive, and the adversarial points really are
// classified differently when the model is run again.
func TestDeepFoolFixtures(t *testing.T) {
	for _, name := range []string{"mlp", "cnn"} {
		for _, norm := range []Norm{L2, LInf} {
			t.Run(name+"/"+norm.String(), func(t *testing.T) {
				m, xa := fixture(t, name)
				c := newClassifier(t, m, Options{Name: name + ".onnx", Threads: 2})
				d := c.SampleSize()
				const n = 40
				x := tile(xa.Data, d, n, 0.05, 1)
				opt := DefaultDeepFoolOptions(norm)
				opt.KeepPerturbation, opt.BatchSize = true, 16
				labels := make([]int, n)
				for i := range labels {
					labels[i] = i % c.NumClasses()
				}
				finished := 0
				opt.Progress = ProgressFunc(func(k int) { finished += k })
				res, err := DeepFool(context.Background(), c, x, labels, opt)
				if err != nil {
					t.Fatal(err)
				}
				if finished != n {
					t.Errorf("progress counted %d images, want %d", finished, n)
				}
				clean, err := c.Predict(x, n)
				if err != nil {
					t.Fatal(err)
				}
				adv := make([]float32, n*d)
				var sumIter, sumRetries int
				var mean float64
				for i, r := range res {
					if r.Label != labels[i] || r.Pred != clean[i] {
						t.Fatalf("image %d: label %d, prediction %d; want %d, %d", i, r.Label, r.Pred, labels[i], clean[i])
					}
					if !r.Success || !(r.Margin > 0) || math.IsInf(r.Margin, 0) {
						t.Errorf("image %d: %+v: want success, 0 < margin < ∞", i, r)
					}
					if got := distance(r.Perturbation, make([]float32, d), norm); math.Abs(got-r.Margin) > 1e-6*r.Margin {
						t.Errorf("image %d: the perturbation's norm is %v, the margin %v", i, got, r.Margin)
					}
					for j, p := range r.Perturbation {
						adv[i*d+j] = x[i*d+j] + p
					}
					sumIter += r.Iterations
					sumRetries += r.Retries
					mean += r.Margin / n
				}
				pred, err := c.Predict(adv, n)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range pred {
					if p == res[i].Pred {
						t.Errorf("image %d: the adversarial point is still classified %d", i, p)
					}
				}
				t.Logf("mean margin %.4g; %.2f steps and %.2f retries per image", mean, float64(sumIter)/n, float64(sumRetries)/n)
			})
		}
	}
}

// TestDeepFoolRetries allows five steps per attempt, which leaves a quarter
// of the CNN's images short of the boundary (it takes 4.9 steps on average):
// the noisy retries must then be taken and counted, failures reported, and the
// results must not depend on the batch size (each image's noise comes from
// its own generator) nor on attacking the images in pieces (FirstImage).
func TestDeepFoolRetries(t *testing.T) {
	m, xa := fixture(t, "cnn")
	c := newClassifier(t, m, Options{Name: "cnn.onnx", Threads: 2})
	const n = 32
	x := tile(xa.Data, c.SampleSize(), n, 0.05, 2)
	for _, retries := range []int{0, 3} {
		opt := DefaultDeepFoolOptions(L2)
		opt.MaxIter, opt.Retries, opt.Seed = 5, retries, 5
		var runs [][]DeepFoolResult
		for _, batch := range []int{64, 5} {
			opt.BatchSize = batch
			res, err := DeepFool(context.Background(), c, x, nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, res)
		}
		if !reflect.DeepEqual(runs[0], runs[1]) {
			t.Errorf("retries %d: results differ between batch sizes 64 and 5:\n%+v\n%+v", retries, runs[0], runs[1])
		}
		// In two pieces, the second from image 11 on, as a shard attacks
		// them: the same results.
		var pieces []DeepFoolResult
		d := c.SampleSize()
		for _, r := range [][2]int{{0, 11}, {11, n}} {
			opt.FirstImage = r[0]
			res, err := DeepFool(context.Background(), c, x[r[0]*d:r[1]*d], nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			pieces = append(pieces, res...)
		}
		opt.FirstImage = 0
		if !reflect.DeepEqual(runs[0], pieces) {
			t.Errorf("retries %d: results differ between one run and two pieces:\n%+v\n%+v", retries, runs[0], pieces)
		}
		var retried, rescued, failed, succeeded int
		for i, r := range runs[0] {
			if r.Retries > 0 {
				retried++
			}
			if r.Iterations > (r.Retries+1)*opt.MaxIter || r.Retries > retries {
				t.Errorf("image %d: %d steps in %d retries; want at most %d steps per attempt, at most %d retries", i, r.Iterations, r.Retries, opt.MaxIter, retries)
			}
			if r.Success {
				succeeded++
				if r.Retries > 0 {
					rescued++
				}
				if r.AdvPred == r.Pred || math.IsInf(r.Margin, 0) {
					t.Errorf("image %d: %+v: a success without a flip or margin", i, r)
				}
				continue
			}
			failed++
			if r.Retries != retries || !math.IsInf(r.Margin, 1) || r.AdvPred != r.Pred {
				t.Errorf("image %d: %+v: a failure must have used all %d retries and have margin +Inf", i, r, retries)
			}
		}
		t.Logf("retries %d: %d succeeded, %d failed, %d retried", retries, succeeded, failed, retried)
		if retries == 0 && failed == 0 {
			t.Errorf("no image failed with one step and no overshoot; the test needs some")
		}
		if retries > 0 && (retried == 0 || rescued == 0) {
			t.Errorf("%d images retried, %d of them flipped; the test needs both", retried, rescued)
		}
	}
}

// TestDeepFoolCancel checks that a cancelled context stops the attack.
func TestDeepFoolCancel(t *testing.T) {
	m, xa := fixture(t, "mlp")
	c := newClassifier(t, m, Options{Threads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	opt := DefaultDeepFoolOptions(L2)
	opt.BatchSize = 1
	opt.Progress = ProgressFunc(func(int) { cancel() })
	_, err := DeepFool(ctx, c, xa.Data, nil, opt)
	if err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
