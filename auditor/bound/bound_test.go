package bound_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/bench/bound/crownref"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

const modelsDir = "../../testdata/models"

var norms = []attack.Norm{attack.L2, attack.LInf}

// fixture loads testdata/models/NAME.onnx and its images.
func fixture(t testing.TB, name string) (*onnxpb.ModelProto, []float32) {
	t.Helper()
	m, x := testmodels.Fixture(t, modelsDir, name)
	return m, x.Data
}

func certifier(t testing.TB, m *onnxpb.ModelProto, opt attack.Options, bopt bound.Options) (*attack.Classifier, *bound.Certifier) {
	t.Helper()
	orttest.Require(t)
	c, err := attack.NewClassifier(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ct, err := bound.New(c, bopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	return c, ct
}

func float64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// refLower is crownref's bound: the minimum over the other classes.
func refLower(net *bound.Net, x []float32, pred int, eps float64, norm attack.Norm, lo, hi float64) float64 {
	m := math.Inf(1)
	for _, v := range crownref.Lower(net, crownref.Ball{X: float64s(x), Eps: eps, Norm: norm, Lo: lo, Hi: hi}, pred) {
		m = min(m, v)
	}
	return m
}

// TestLowerMatchesReference holds the ONNX graphs' bounds against the
// float64 reference on fixtures and on convNet, which has every supported
// op, at radii from zero (the bound is then the exact logit gap) to where
// it is far negative. The tolerance, 2e-5 of the bound's scale (the
// largest |bound| over the radii), is float32 rounding over a few
// thousand-term sums.
func TestLowerMatchesReference(t *testing.T) {
	conv := convNet(3)
	for _, tc := range []struct {
		name   string
		m      *onnxpb.ModelProto
		images int
	}{{"mlp", nil, 1}, {"cnn_small", nil, 1}, {"convNet", conv, 4}} {
		m, x := tc.m, []float32(nil)
		if m == nil {
			m, x = fixture(t, tc.name)
		}
		c, ct := certifier(t, m, attack.Options{}, bound.Options{})
		d := c.SampleSize()
		if x == nil {
			x = randomImages(5, tc.images, d)
		}
		x = x[:tc.images*d]
		pred, err := c.Predict(x, tc.images)
		if err != nil {
			t.Fatal(err)
		}
		for _, norm := range norms {
			radii := []float64{0, 0.003, 0.03, 0.3}
			got, want := make([][]float64, len(radii)), make([][]float64, len(radii))
			scale := 0.0
			for r, e := range radii {
				eps := make([]float64, tc.images)
				for i := range eps {
					eps[i] = e
				}
				if got[r], err = ct.Lower(x, pred, eps, norm); err != nil {
					t.Fatal(err)
				}
				for i := range tc.images {
					want[r] = append(want[r], refLower(ct.Net(), x[i*d:(i+1)*d], pred[i], e, norm, 0, 1))
					scale = max(scale, math.Abs(want[r][i]))
				}
			}
			for r, e := range radii {
				for i := range tc.images {
					if math.Abs(got[r][i]-want[r][i]) > 2e-5*scale {
						t.Errorf("%s %v ε %v image %d: graphs %.7g, reference %.7g", tc.name, norm, e, i, got[r][i], want[r][i])
					}
				}
			}
		}
	}
}

func randomImages(seed uint64, n, d int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

// TestLinearExact: on an affine classifier the relaxation is exact, so the
// certified radius is the distance to the nearest decision boundary,
// min_j (z_p − z_j)/‖w_p − w_j‖_q (q = 2 for L2, 1 for L∞), when the box
// does not bind (images near 0 in the box [−10, 10]). The radius is within
// the bisection's resolution and the safety factor below it: 2⁻¹⁶ of the
// bracket (twice the distance) plus 1e-3, rounded up to 2e-3.
func TestLinearExact(t *testing.T) {
	const d, k = 5, 4
	b := newNetBuilder(9)
	w := b.random([]int64{k, d}, 1)
	bias := b.random([]int64{k}, 1)
	b.add("Gemm", []string{w, bias}, intAttr("transB", 1))
	m := b.model([]int64{d}, k)
	c, ct := certifier(t, m, attack.Options{Lo: -10, Hi: 10}, bound.Options{})
	W, _ := onnxgrad.TensorFloat32(m.GetGraph().GetInitializer()[0])
	B, _ := onnxgrad.TensorFloat32(m.GetGraph().GetInitializer()[1])
	const n = 20
	x := randomImages(13, n, d)
	for i := range x {
		x[i] -= 0.5
	}
	pred, err := c.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, norm := range norms {
		exact := make([]float64, n)
		for i := range n {
			exact[i] = math.Inf(1)
			z := make([]float64, k)
			for j := range k {
				z[j] = float64(B[j])
				for a := range d {
					z[j] += float64(W[j*d+a]) * float64(x[i*d+a])
				}
			}
			for j := range k {
				if j == pred[i] {
					continue
				}
				var q float64
				for a := range d {
					v := float64(W[pred[i]*d+a] - W[j*d+a])
					if norm == attack.L2 {
						q += v * v
					} else {
						q += math.Abs(v)
					}
				}
				if norm == attack.L2 {
					q = math.Sqrt(q)
				}
				exact[i] = min(exact[i], (z[pred[i]]-z[j])/q)
			}
		}
		upper := make([]float64, n)
		for i := range upper {
			upper[i] = 2 * exact[i]
		}
		got, err := ct.Certify(context.Background(), x, pred, norm, upper)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if got[i] > exact[i] || got[i] < exact[i]*(1-2e-3) {
				t.Errorf("%v image %d: certified %.7g, exact distance %.7g", norm, i, got[i], exact[i])
			}
		}
	}
}

// TestTinyReluBruteForce certifies points of ReLU networks on 2-D inputs
// and compares with a brute force over a 401×401 grid of the box [0, 1]²:
// no grid point within the certified radius may change the prediction
// (soundness, no tolerance); every point at least a grid spacing from a
// flip certifies some radius; and the mean ratio of the certified radius to
// the distance of the nearest grid point that flips must be at least 0.4
// (CROWN reaches 0.66–0.77 on these nets; a ratio far below would mean a
// needlessly loose relaxation).
func TestTinyReluBruteForce(t *testing.T) {
	const grid = 401
	pts := make([]float32, 2*grid*grid)
	for i := range grid {
		for j := range grid {
			pts[2*(i*grid+j)], pts[2*(i*grid+j)+1] = float32(i)/(grid-1), float32(j)/(grid-1)
		}
	}
	h := 1.0 / (grid - 1) // the grid spacing
	checked := 0
	for seed := range uint64(3) {
		c, ct := certifier(t, mlp2d(seed+20, 16, 3), attack.Options{}, bound.Options{})
		gridPred, err := c.Predict(pts, grid*grid)
		if err != nil {
			t.Fatal(err)
		}
		const n = 30
		x := randomImages(seed, n, 2)
		for i := range x {
			x[i] = 0.1 + 0.8*x[i]
		}
		pred, err := c.Predict(x, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, norm := range norms {
			got, err := ct.Certify(context.Background(), x, pred, norm, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ratio float64
			var flipped int
			for i := range n {
				flip := math.Inf(1)
				for g, p := range gridPred {
					if p == pred[i] {
						continue
					}
					dx, dy := float64(pts[2*g]-x[2*i]), float64(pts[2*g+1]-x[2*i+1])
					dist := max(math.Abs(dx), math.Abs(dy))
					if norm == attack.L2 {
						dist = math.Hypot(dx, dy)
					}
					flip = min(flip, dist)
				}
				if got[i] >= flip {
					t.Errorf("net %d %v point %v: certified %.5g, but a grid point at %.5g changes the prediction", seed, norm, x[2*i:2*i+2], got[i], flip)
				}
				if got[i] <= 0 && flip > h {
					t.Errorf("net %d %v point %v: nothing certified, a flip at %.5g", seed, norm, x[2*i:2*i+2], flip)
				}
				if !math.IsInf(flip, 1) {
					ratio += got[i] / flip
					flipped++
				}
				checked++
			}
			if mean := ratio / float64(flipped); mean < 0.4 {
				t.Errorf("net %d %v: mean certified/brute-force radius %.3f: too loose", seed, norm, mean)
			}
			if flipped < n/2 {
				t.Errorf("net %d: only %d of %d points have a flip in the box; the test is weak", seed, flipped, n)
			}
			t.Logf("net %d %v: mean certified/brute-force radius %.3f", seed, norm, ratio/float64(flipped))
		}
	}
	t.Logf("%d points checked", checked)
}

// TestFixturesBelowDeepFool: the certified radius never exceeds the margin
// DeepFool finds, on the images of the fixture models that bound
// propagation supports (dense, convolutional with max pooling, with a
// final Softmax, flattened by x.view), and is positive.
func TestFixturesBelowDeepFool(t *testing.T) {
	count := 0
	for _, tc := range []struct {
		name   string
		images int // the CNNs' 3,136-row backward passes cost seconds per image
	}{{"mlp", 4}, {"mlp_view", 4}, {"cnn_small", 2}, {"cnn_small_softmax", 2}, {"cnn", 2}} {
		name := tc.name
		m, x := fixture(t, name)
		start := time.Now()
		c, ct := certifier(t, m, attack.Options{}, bound.Options{Steps: 6})
		x = x[:tc.images*c.SampleSize()]
		for _, norm := range norms {
			res, err := attack.DeepFool(context.Background(), c, x, nil, attack.DefaultDeepFoolOptions(norm))
			if err != nil {
				t.Fatal(err)
			}
			pred, upper := make([]int, len(res)), make([]float64, len(res))
			for i, r := range res {
				pred[i], upper[i] = r.Pred, r.Margin
			}
			// Bracketed by twice DeepFool's margin, so that a radius above
			// it could show.
			for i := range upper {
				upper[i] *= 2
			}
			got, err := ct.Certify(context.Background(), x, pred, norm, upper)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if got[i] > r.Margin {
					t.Errorf("%s %v image %d: certified %.5g > DeepFool's %.5g", name, norm, i, got[i], r.Margin)
				}
				if got[i] <= 0 {
					t.Errorf("%s %v image %d: nothing certified (DeepFool %.5g)", name, norm, i, r.Margin)
				}
				count++
			}
		}
		t.Logf("%s: %v", name, time.Since(start))
	}
	t.Logf("%d image×norm pairs checked", count)
}

// TestUnsupported: an op outside the supported set is refused by name.
func TestUnsupported(t *testing.T) {
	m, _ := fixture(t, "cnn_overlap")
	orttest.Require(t)
	c, err := attack.NewClassifier(m, attack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = bound.New(c, bound.Options{})
	var ue *bound.UnsupportedError
	if !errors.As(err, &ue) || ue.Op != "Tanh" || ue.Node == "" {
		t.Fatalf("got %v, want an UnsupportedError for Tanh", err)
	}
}
