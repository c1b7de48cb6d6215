package attack

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPGDLinearOptimum attacks two-class linear models, where the
// cross-entropy of class y is softplus((w_o − w_y)·x + b_o − b_y), an
// increasing function of a linear one: over the L∞ ball the maximum is at
// x₀ + ε·sign(Δw) (clipped to the range), over the L2 ball at
// x₀ + ε·Δw/‖Δw‖₂. From a random start, PGD must end exactly (L∞) or
// within float32 rounding (L2) there.
func TestPGDLinearOptimum(t *testing.T) {
	const d, n = 30, 50
	cases := []struct {
		norm        Norm
		eps, step   float64
		steps       int
		lo, hi      float32
		randomStart bool
	}{
		// 2ε/α = 8 steps cross the ball; 20 are enough.
		{norm: LInf, eps: 0.05, step: 0.0125, steps: 20, lo: 0, hi: 1, randomStart: true},
		{norm: LInf, eps: 0.3, step: 0.1, steps: 20, lo: 0, hi: 1, randomStart: true}, // the range binds often
		{norm: LInf, eps: 0.05, step: 0.05, steps: 1, lo: 0, hi: 1},                   // FGSM
		// The orthogonal part of the start shrinks at each projection.
		{norm: L2, eps: 0.5, step: 0.5, steps: 60, lo: -10, hi: 10, randomStart: true},
	}
	for ci, tc := range cases {
		t.Run(tc.norm.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 21))
			lin := newLinear(rng, 2, d)
			c := newClassifier(t, lin.model(), Options{Name: "linear2", Lo: tc.lo, Hi: tc.hi, Threads: 1})
			x := make([]float32, n*d)
			for i := range x {
				x[i] = float32(0.05 + 0.9*rng.Float64())
			}
			labels := make([]int, n)
			for i := range labels {
				labels[i] = rng.IntN(2)
			}
			p, err := NewPGD(c, PGDOptions{Norm: tc.norm, Eps: tc.eps, PGDParams: PGDParams{Step: tc.step, Steps: tc.steps, RandomStart: tc.randomStart}, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			adv := make([]float32, len(x))
			if err := p.Attack(context.Background(), adv, x, labels, nil); err != nil {
				t.Fatal(err)
			}
			var maxErr float64
			for i, y := range labels {
				o := 1 - y
				var norm float64
				for j := range d {
					dw := lin.w[o*d+j] - lin.w[y*d+j]
					norm += dw * dw
				}
				norm = math.Sqrt(norm)
				for j := range d {
					x0, got := x[i*d+j], adv[i*d+j]
					dw := lin.w[o*d+j] - lin.w[y*d+j]
					if tc.norm == LInf {
						want := min(x0+float32(tc.eps), tc.hi)
						if dw < 0 {
							want = max(x0-float32(tc.eps), tc.lo)
						}
						if got != want {
							t.Fatalf("image %d pixel %d: %v, want %v (x₀ = %v, Δw = %v)", i, j, got, want, x0, dw)
						}
						continue
					}
					want := float64(x0) + tc.eps*dw/norm
					maxErr = max(maxErr, math.Abs(float64(got)-want))
				}
			}
			if tc.norm == L2 {
				t.Logf("max pixel error %.3g", maxErr)
				if maxErr > 1e-5 {
					t.Errorf("max pixel error %.3g > 1e-5", maxErr)
				}
			}
		})
	}
}

// TestPGDConstraints checks on a CNN that every adversarial image lies in
// the ε-ball (in float32, exactly as the projection computes it) and in
// the range, that reported successes are misclassified when the model is
// run again, and that robust accuracy ≤ clean accuracy.
func TestPGDConstraints(t *testing.T) {
	m, xa := fixture(t, "cnn")
	c := newClassifier(t, m, Options{Name: "cnn.onnx", Threads: 2})
	d := c.SampleSize()
	const n = 24
	x := tile(xa.Data, d, n, 0.05, 4)
	clean, err := c.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = clean[i]
		if i%4 == 3 {
			labels[i] = (clean[i] + 1) % c.NumClasses() // some images misclassified
		}
	}
	for _, tc := range []struct {
		norm      Norm
		eps, step float64
	}{
		{LInf, 0.08, 0.016}, // DeepFool: mean L∞ margin 0.049; cross-entropy ascent on this untrained net needs more
		{L2, 2, 0.4},        // DeepFool: mean L2 margin 0.92
	} {
		t.Run(tc.norm.String(), func(t *testing.T) {
			opt := PGDOptions{Norm: tc.norm, Eps: tc.eps, PGDParams: PGDParams{Step: tc.step, Steps: 10, RandomStart: true}, Seed: 9, BatchSize: 10}
			p, err := NewPGD(c, opt)
			if err != nil {
				t.Fatal(err)
			}
			adv := make([]float32, len(x))
			success := make([]bool, n)
			if err := p.Attack(context.Background(), adv, x, labels, success); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				xi, ai := x[i*d:(i+1)*d], adv[i*d:(i+1)*d]
				for j, v := range ai {
					if v < 0 || v > 1 {
						t.Fatalf("image %d pixel %d: %v outside [0, 1]", i, j, v)
					}
					if tc.norm == LInf && (v < xi[j]-float32(tc.eps) || v > xi[j]+float32(tc.eps)) {
						t.Fatalf("image %d pixel %d: %v, more than ε = %v from %v", i, j, v, tc.eps, xi[j])
					}
				}
				if tc.norm == L2 {
					if dist := distance(ai, xi, L2); dist > tc.eps {
						t.Fatalf("image %d: ‖δ‖₂ = %.9g > ε = %v", i, dist, tc.eps)
					}
				}
			}
			pred, err := c.Predict(adv, n)
			if err != nil {
				t.Fatal(err)
			}
			fooled := 0
			for i, s := range success {
				if s != (pred[i] != labels[i]) {
					t.Errorf("image %d: success %v, but predicted %d for label %d", i, s, pred[i], labels[i])
				}
				if s {
					fooled++
				}
			}
			r, err := RobustAccuracy(context.Background(), c, x, labels, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d of %d fooled; clean accuracy %.3f, robust %.3f", fooled, n, r.CleanAccuracy(), r.RobustAccuracy())
			if r.N != n || r.Correct != n-n/4 || r.Robust > r.Correct || r.RobustAccuracy() > r.CleanAccuracy() || countTrue(r.IsRobust) != r.Robust || len(r.IsRobust) != n {
				t.Errorf("%+v: want N = %d, Correct = %d, Robust ≤ Correct, IsRobust of every image adding up to Robust", r, n, n-n/4)
			}
			if fooled == 0 || r.Robust == r.Correct {
				t.Errorf("the attack fooled nothing; choose a larger ε")
			}
		})
	}
}

// TestPGDAllocations checks that a PGD reused across batches, as in
// adversarial training, allocates little: no buffer of the batch's size.
func TestPGDAllocations(t *testing.T) {
	m, xa := fixture(t, "mlp")
	c := newClassifier(t, m, Options{Threads: 1})
	p, err := NewPGD(c, PGDOptions{Norm: LInf, Eps: 0.1, PGDParams: PGDParams{Step: 0.02, Steps: 5, RandomStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	x := tile(xa.Data, c.SampleSize(), 32, 0.05, 5)
	labels := make([]int, 32)
	adv := make([]float32, len(x))
	attack := func() {
		if err := p.Attack(context.Background(), adv, x, labels, nil); err != nil {
			t.Fatal(err)
		}
	}
	attack()
	var before, after runtimeMem
	before.read()
	attack()
	after.read()
	// Each onnxruntime run allocates a little bookkeeping; the batch is
	// 32 × 784 float32 = 100 kB.
	if b := after.bytes - before.bytes; b > 32*1024 {
		t.Errorf("a second attack allocated %d bytes; want under 32 kB", b)
	}
}

// countTrue counts the true values of b.
func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
