package attack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestClassifierLossGradientConfident checks the cross-entropy gradient on
// images classified so confidently that p_y rounds to 1 in float32: the
// label's term (p_y − 1)·∇f_y must not vanish, or the gradient would point
// along the other classes' scores alone. It also checks the loss where p_y
// underflows to 0 in float32: exact after a final Softmax (replaced by a
// LogSoftmax), −log 2^-126 where probabilities are clamped before their
// log; finite either way. Models of opsets 9, 13 and 18 check that the
// nodes appended to the graph mean the same before and after onnxgrad's
// upgrade to opset 13.
func TestClassifierLossGradientConfident(t *testing.T) {
	for _, opset := range []int64{9, 13, 18} {
		t.Run(fmt.Sprint("opset ", opset), func(t *testing.T) { testLossGradientConfident(t, opset) })
	}
}

func testLossGradientConfident(t *testing.T, opset int64) {
	withOpset := func(m *onnxpb.ModelProto) *onnxpb.ModelProto {
		m.OpsetImport[0].Version = proto.Int64(opset)
		return m
	}
	// f(x) = W x: logit gaps of 30 at x = (1, 0) and (0, 1).
	lin := &linear{k: 3, d: 2, w: []float64{30, 0, 0, 0, 0, 30}, b: make([]float64, 3)}
	c := newClassifier(t, withOpset(lin.model()), Options{Threads: 1, Scores: LogitScores})
	x := []float32{1, 0, 0, 1}
	labels := []int{0, 2}
	grad := make([]float32, len(x))
	loss, err := c.LossGradient(grad, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	var wantLoss float64
	for i, y := range labels {
		f := lin.logits(x[i*2 : i*2+2])
		var sum float64
		for k := range f {
			sum += math.Exp(f[k] - f[y])
		}
		wantLoss += math.Log(sum) / 2
		want := make([]float64, 2) // Σ_{k≠y} p_k (w_k − w_y)
		for k := range f {
			if k != y {
				p := math.Exp(f[k]-f[y]) / sum
				for j := range want {
					want[j] += p * (lin.w[k*2+j] - lin.w[y*2+j])
				}
			}
		}
		norm := math.Hypot(want[0], want[1])
		for j, w := range want {
			// float64 rounding of p_y − 1 ≈ −2e-13 costs ~1e-3 of it;
			// without the label's term pixel 0 of image 0 would be 0.
			if g := float64(grad[i*2+j]); math.Abs(g-w) > 1e-2*norm {
				t.Errorf("image %d pixel %d: gradient %v, want %v", i, j, g, w)
			}
		}
	}
	if math.Abs(loss-wantLoss) > 1e-3*wantLoss+1e-20 {
		t.Errorf("loss %v, want %v", loss, wantLoss)
	}

	// softmax(W x) at x = (1, 0): p_1 = e^-120 = 0 in float32.
	w := []float64{120, 0, 0, 0, 0, 120}
	softmax := func(extra bool) *onnxpb.ModelProto {
		m := (&linear{k: 3, d: 2, w: w, b: make([]float64, 3)}).model()
		g := m.GetGraph()
		g.Node[0].Output[0] = "z"
		g.Node = append(g.Node, node("Softmax", []string{"z"}, "p", attrInt("axis", 1)), node("Identity", []string{"p"}, "logits"))
		if extra { // another reader of p: the Softmax stays
			g.Node = append(g.Node, node("Identity", []string{"p"}, "copy"))
			g.Output = append(g.Output, valueInfo("copy", "N", 3))
		}
		return withOpset(m)
	}
	for _, tc := range []struct {
		extra  bool
		source ScoreSource
		loss   float64 // −log p_1
		grad   []float64
	}{
		// −log p_1 = 120; its gradient Σ_k p_k w_k − w_1 = w_0 = (120, 0).
		{false, ScoresSoftmaxReplaced, 120, []float64{120, 0}},
		// Every score is log 2^-126 but the first, log 1 = 0: the loss is
		// 87.3 and the clamp's gradient 0.
		{true, ScoresLogOfProbabilities, -math.Log(minProbability), []float64{0, 0}},
	} {
		cp := newClassifier(t, softmax(tc.extra), Options{Threads: 1, Scores: ProbabilityScores})
		if cp.ScoreSource() != tc.source {
			t.Errorf("scores %q, want %q", cp.ScoreSource(), tc.source)
		}
		loss, err = cp.LossGradient(grad[:2], x[:2], []int{1})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(loss-tc.loss) > 1e-6*tc.loss {
			t.Errorf("%s: loss of p_y = 0: %v, want %v", tc.source, loss, tc.loss)
		}
		for j, want := range tc.grad {
			if math.Abs(float64(grad[j])-want) > 1e-4*120 {
				t.Errorf("%s: gradient of p_y = 0: %v, want %v", tc.source, grad[:2], tc.grad)
				break
			}
		}
	}
}

// TestPureProbabilityRows checks the probability detector.
func TestPureProbabilityRows(t *testing.T) {
	for _, tc := range []struct {
		scores []float32
		want   bool
	}{
		{[]float32{0.25, 0.75, 1, 0}, true},
		{[]float32{0.25, 0.75, 0.5, 0.6}, false},
		{[]float32{-0.25, 1.25}, false},
		{[]float32{2, -1}, false},
	} {
		if got := LooksLikeProbabilities(tc.scores, 2); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.scores, got, tc.want)
		}
	}
}

// TestClassifierJacobian compares the classifier's Jacobian with the one
// torch.autograd computed for the fixtures, and the seeded Jacobian with
// e_k − e_j seeds with the difference of its rows.
func TestClassifierJacobian(t *testing.T) {
	for _, name := range []string{"mlp", "cnn", "resnet_small"} {
		t.Run(name, func(t *testing.T) {
			m, x := fixture(t, name)
			want, err := npy.ReadFile(filepath.Join(modelsDir, name+".jac.npy"))
			if err != nil {
				t.Fatal(err)
			}
			c := newClassifier(t, m, Options{Name: name, Threads: 2, BatchSize: 3})
			n, k, d := x.Shape[0], c.NumClasses(), c.SampleSize()
			_, jac, err := c.Jacobian(x.Data, n)
			if err != nil {
				t.Fatal(err)
			}
			var maxJ, maxErr float64
			for i, v := range want.Data {
				maxJ = max(maxJ, math.Abs(float64(v)))
				maxErr = max(maxErr, math.Abs(float64(jac[i]-v)))
			}
			// The fixtures' README: float32 runtimes match to ~2e-7 of max |J|.
			if maxErr > 1e-5*maxJ {
				t.Errorf("max error %.3g, max |J| %.3g", maxErr, maxJ)
			}
			seeds := make([]float32, n*k)
			for i := range n {
				seeds[i*k+(i+1)%k], seeds[i*k+i%k] = 1, -1
			}
			scores, gap := make([]float32, n*k), make([]float32, n*d)
			if err := c.SeededJacobian(scores, gap, x.Data, n, seeds, 1); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				for j := range d {
					w := jac[(i*k+(i+1)%k)*d+j] - jac[(i*k+i%k)*d+j]
					if e := math.Abs(float64(gap[i*d+j] - w)); e > 1e-5*maxJ {
						t.Fatalf("image %d pixel %d: seeded %v, rows' difference %v", i, j, gap[i*d+j], w)
					}
				}
			}
		})
	}
}

// TestClassifierLossGradient checks the cross-entropy gradient against its
// closed form on a linear model, (softmax(f) − onehot(y))·W, and checks that
// a model outputting softmax(z) (its Softmax replaced by a LogSoftmax) and
// one outputting log_softmax(z) give the same loss and gradient: −log p_y.
func TestClassifierLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	lin := newLinear(rng, 5, 12)
	c := newClassifier(t, lin.model(), Options{Threads: 1})
	if c.ScoreSource() != ScoresLogits {
		t.Fatalf("a linear model's scores: %q", c.ScoreSource())
	}
	const n = 6
	x := make([]float32, n*lin.d)
	for i := range x {
		x[i] = rng.Float32()
	}
	labels := []int{0, 1, 2, 3, 4, 0}
	grad := make([]float32, len(x))
	loss, err := c.LossGradient(grad, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	var wantLoss float64
	for i, y := range labels {
		f := lin.logits(x[i*lin.d : (i+1)*lin.d])
		var sum float64
		for _, v := range f {
			sum += math.Exp(v)
		}
		wantLoss += (math.Log(sum) - f[y]) / n
		for j := range lin.d {
			var g float64
			for k, v := range f {
				p := math.Exp(v) / sum
				if k == y {
					p--
				}
				g += p * lin.w[k*lin.d+j]
			}
			if e := math.Abs(float64(grad[i*lin.d+j]) - g); e > 1e-6 {
				t.Errorf("image %d pixel %d: %v, want %v", i, j, grad[i*lin.d+j], g)
			}
		}
	}
	if math.Abs(loss-wantLoss) > 1e-6 {
		t.Errorf("loss %v, want %v", loss, wantLoss)
	}

	ms, x2 := fixture(t, "misc_softmax")
	ml, _ := fixture(t, "misc_logsoftmax")
	cs := newClassifier(t, ms, Options{Name: "misc_softmax"})
	cl := newClassifier(t, ml, Options{Name: "misc_logsoftmax"})
	if cs.ScoreSource() != ScoresSoftmaxReplaced || cl.ScoreSource() != ScoresLogSoftmax {
		t.Fatalf("scores: softmax model %q, log-softmax model %q", cs.ScoreSource(), cl.ScoreSource())
	}
	labels = []int{3, 1, 4, 1}
	gs, gl := make([]float32, len(x2.Data)), make([]float32, len(x2.Data))
	ls, err := cs.LossGradient(gs, x2.Data, labels)
	if err != nil {
		t.Fatal(err)
	}
	ll, err := cl.LossGradient(gl, x2.Data, labels)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ls-ll) > 1e-5*ll {
		t.Errorf("loss %v from probabilities, %v from log-probabilities", ls, ll)
	}
	var maxG float64
	for _, v := range gl {
		maxG = max(maxG, math.Abs(float64(v)))
	}
	for i := range gs {
		if e := math.Abs(float64(gs[i] - gl[i])); e > 1e-4*maxG {
			t.Fatalf("pixel %d: %v from probabilities, %v from log-probabilities", i, gs[i], gl[i])
		}
	}
}

// convModel is Conv(3→4, k3, no padding) − Relu − Flatten − Gemm(64→10) on
// [N, 3, 6, 6] images, with its weights; without padding, a normalisation
// folds exactly into the convolution.
type convModel struct {
	w, b, w2, b2 []float32
}

func newConvModel(rng *rand.Rand) *convModel {
	r := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(s * rng.NormFloat64())
		}
		return v
	}
	return &convModel{w: r(4*3*9, 0.5), b: r(4, 0.1), w2: r(10*64, 0.3), b2: r(10, 0.1)}
}

func (cm *convModel) model(w, b []float32) *onnxpb.ModelProto {
	return model(&onnxpb.GraphProto{
		Name:   proto.String("conv"),
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", "N", 3, 6, 6)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("logits", "N", 10)},
		Initializer: []*onnxpb.TensorProto{
			onnxgrad.NewTensorFloat32("w", []int64{4, 3, 3, 3}, w), onnxgrad.NewTensorFloat32("b", []int64{4}, b),
			onnxgrad.NewTensorFloat32("w2", []int64{10, 64}, cm.w2), onnxgrad.NewTensorFloat32("b2", []int64{10}, cm.b2),
		},
		Node: []*onnxpb.NodeProto{
			node("Conv", []string{"x", "w", "b"}, "h"),
			node("Relu", []string{"h"}, "r"),
			node("Flatten", []string{"r"}, "f"),
			node("Gemm", []string{"f", "w2", "b2"}, "logits", attrInt("transB", 1)),
		},
	})
}

// TestClassifierNormalisation checks that a model given (x − mean)/std in
// Options scores, attacks and measures like the same model with the
// normalisation folded into its first layer, W' = W/std and
// b' = b − Σ W·mean/std, in float64.
func TestClassifierNormalisation(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	cm := newConvModel(rng)
	mean, std := []float32{0.49, 0.48, 0.45}, []float32{0.25, 0.24, 0.26} // CIFAR-10's, rounded
	fw, fb := make([]float32, len(cm.w)), make([]float32, len(cm.b))
	for o := range 4 {
		acc := float64(cm.b[o])
		for ch := range 3 {
			for s := range 9 {
				i := (o*3+ch)*9 + s
				fw[i] = float32(float64(cm.w[i]) / float64(std[ch]))
				acc -= float64(cm.w[i]) * float64(mean[ch]) / float64(std[ch])
			}
		}
		fb[o] = float32(acc)
	}
	cn := newClassifier(t, cm.model(cm.w, cm.b), Options{Name: "normalised", Mean: mean, Std: std, Threads: 1})
	cf := newClassifier(t, cm.model(fw, fb), Options{Name: "folded", Threads: 1})
	if !cn.Normalised() || cf.Normalised() {
		t.Fatalf("Normalised: %v, %v", cn.Normalised(), cf.Normalised())
	}
	const n = 40
	x := make([]float32, n*cn.SampleSize())
	for i := range x {
		x[i] = rng.Float32()
	}
	sn, err := cn.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := cf.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sn {
		if math.Abs(float64(sn[i]-sf[i])) > 1e-5 {
			t.Fatalf("score %d: %v normalised in the graph, %v folded", i, sn[i], sf[i])
		}
	}
	for _, norm := range []Norm{L2, LInf} {
		opt := DefaultDeepFoolOptions(norm)
		rn, err := DeepFool(context.Background(), cn, x, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		rf, err := DeepFool(context.Background(), cf, x, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		var maxRel float64
		for i := range rn {
			if !rn[i].Success || !rf[i].Success || rn[i].Pred != rf[i].Pred {
				t.Fatalf("%v image %d: %+v normalised, %+v folded", norm, i, rn[i], rf[i])
			}
			maxRel = max(maxRel, math.Abs(rn[i].Margin-rf[i].Margin)/rf[i].Margin)
		}
		t.Logf("%v: max relative margin difference %.3g", norm, maxRel)
		if maxRel > 1e-3 {
			t.Errorf("%v: margins differ by up to %.3g relative", norm, maxRel)
		}
	}
}

// TestClassifierErrors checks the errors for models and data that do not
// fit, and that they name the model.
func TestClassifierErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	lin := newLinear(rng, 3, 4)
	withNodes := func(out *onnxpb.ValueInfoProto, extra ...*onnxpb.NodeProto) *onnxpb.ModelProto {
		m := lin.model()
		g := m.GetGraph()
		g.Node[0].Output[0] = "z"
		g.Node = append(g.Node, extra...)
		g.Output = []*onnxpb.ValueInfoProto{out}
		return m
	}
	axes := &onnxpb.TensorProto{Name: proto.String("ax"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{1}, Int64Data: []int64{2}}
	rank3 := withNodes(valueInfo("logits", "N", 3, 1), node("Unsqueeze", []string{"z", "ax"}, "logits"))
	rank3.Graph.Initializer = append(rank3.Graph.Initializer, axes)
	rank3Undeclared := withNodes(valueInfo("logits"), node("Unsqueeze", []string{"z", "ax"}, "logits"))
	rank3Undeclared.Graph.Initializer = append(rank3Undeclared.Graph.Initializer, axes)
	// log of the scores: NaN wherever one is negative, which random inputs
	// in [0, 1] make happen at once.
	nanAlways := withNodes(valueInfo("logits", "N", 3), node("Log", []string{"z"}, "logits"))

	symbolic := lin.model()
	symbolic.Graph.Input[0] = valueInfo("x", "N", "D")
	if c := newClassifier(t, symbolic, Options{InputShape: []int64{4}}); c.SampleSize() != 4 {
		t.Errorf("symbolic input fixed to [4]: sample size %d", c.SampleSize())
	}

	for _, tc := range []struct {
		name string
		m    *onnxpb.ModelProto
		opt  Options
		as   any
		msg  string
	}{
		{"output rank 3", rank3, Options{Name: "rank3.onnx"}, new(*ShapeError), "rank3.onnx: output \"logits\" has rank 3"},
		{"output rank 3 undeclared", rank3Undeclared, Options{Name: "rank3u.onnx"}, new(*ShapeError), "[2 3 1] for 2 images; want float32 class scores [N, K]"},
		{"NaN scores", nanAlways, Options{Name: "nan.onnx"}, new(*NonFiniteError), "nan.onnx: the scores of image"},
		{"input shape", lin.model(), Options{Name: "lin.onnx", InputShape: []int64{5}}, new(*ImageSizeError), "lin.onnx: images of size [5] do not fit: input \"x\" takes images of size [4]"},
		{"input rank", lin.model(), Options{Name: "lin.onnx", InputShape: []int64{2, 2}}, new(*ImageSizeError), "images of size [2, 2] do not fit: input \"x\" takes images of size [4]"},
		{"mean", lin.model(), Options{Name: "lin.onnx", Mean: []float32{1, 2}}, new(*NormalisationError), "lin.onnx: normalisation: 2 mean values; want 1, or one per channel: 4 on axis 1 of the input [N, 4]"},
		{"std 0", lin.model(), Options{Name: "lin.onnx", Std: []float32{0}}, new(*NormalisationError), "non-zero std"},
		{"symbolic image size", symbolic, Options{Name: "sym.onnx"}, new(*ImageSizeError), "sym.onnx: input \"x\" takes images of size [?]: the size of an image is needed"},
		{"layout", lin.model(), Options{Name: "lin.onnx", Layout: 7}, nil, "lin.onnx: unknown layout Layout(7)"},
		{"range", lin.model(), Options{Name: "lin.onnx", Lo: 1, Hi: 1}, nil, "lin.onnx: input range [1, 1] is empty"},
		{"output name", lin.model(), Options{Name: "lin.onnx", Output: "probs"}, new(*ShapeError), "no output \"probs\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.as != nil {
				newClassifier(t, lin.model(), Options{}) // skips without onnxruntime
			}
			c, err := NewClassifier(tc.m, tc.opt)
			if err == nil {
				c.Close()
				t.Fatalf("no error")
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %v (%T); want a %T", err, err, tc.as)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "attack: ") {
				t.Errorf("error %q; want it to start with \"attack: \" and contain %q", err, tc.msg)
			}
		})
	}

	// NaN only for some inputs: sqrt(W·x − 0.25) with positive weights is
	// NaN where W·x < 0.25, which random images in [0, 1]⁴ (the probe's)
	// almost never reach, but image 2, all zeros, does.
	pos := &linear{k: 3, d: 4, w: []float64{1, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1}, b: []float64{-0.25, -0.25, -0.25}}
	sq := pos.model()
	sq.Graph.Node[0].Output[0] = "z"
	sq.Graph.Node = append(sq.Graph.Node, node("Sqrt", []string{"z"}, "logits"))
	c := newClassifier(t, sq, Options{Name: "sqrt.onnx"})
	x := []float32{0.5, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4, 0, 0, 0, 0}
	var nf *NonFiniteError
	if _, err := c.Logits(x, 3); !errors.As(err, &nf) || nf.Image != 2 || nf.What != "scores" || !math.IsNaN(nf.Value) || !strings.Contains(err.Error(), "sqrt.onnx") {
		t.Errorf("Logits: %v; want NaN scores of image 2 of sqrt.onnx", err)
	}
	if _, err := DeepFool(context.Background(), c, x, nil, DefaultDeepFoolOptions(L2)); !errors.As(err, &nf) || nf.Image != 2 {
		t.Errorf("DeepFool: %v; want NaN scores of image 2", err)
	}
	// The derivative of sqrt at 0 is infinite: (0.25, 0, 0, 0) puts scores
	// 0 and 2 exactly at 0, and their gradient is not finite.
	zero := []float32{0.5, 0.5, 0.5, 0.5, 0.25, 0, 0, 0}
	if _, err := c.LossGradient(make([]float32, 8), zero, []int{0, 0}); !errors.As(err, &nf) || nf.Image != 1 || nf.What != "gradient" {
		t.Errorf("LossGradient: %v; want a non-finite gradient of image 1", err)
	}

	// Data that does not fit.
	var se *ShapeError
	if _, err := c.Logits(x[:10], -1); !errors.As(err, &se) || !strings.Contains(err.Error(), "10 input values are not a whole number of images of [4] = 4 pixels") {
		t.Errorf("Logits on 10 values: %v", err)
	}
	if _, err := c.Logits(x, 2); !errors.As(err, &se) {
		t.Errorf("Logits on 3 images called 2: %v", err)
	}
	if _, err := DeepFool(context.Background(), c, x[:8], []int{1}, DefaultDeepFoolOptions(L2)); !errors.As(err, &se) {
		t.Errorf("DeepFool with 1 label for 2 images: %v", err)
	}
	var re *RangeError
	if _, err := DeepFool(context.Background(), c, []float32{0, 0, 2, 0}, nil, DefaultDeepFoolOptions(L2)); !errors.As(err, &re) || re.Index != 2 {
		t.Errorf("DeepFool on a pixel out of range: %v", err)
	}
	if _, err := DeepFool(context.Background(), c, x[:4], nil, DeepFoolOptions{}); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), `norm ""`) {
		t.Errorf("DeepFool without a norm: %v", err)
	}
	if _, err := NewPGD(c, PGDOptions{Norm: LInf, Eps: -1}); err == nil {
		t.Errorf("PGD with ε < 0: no error")
	}
	c.Close()
	c.Close()
	if _, err := c.Logits(x, 3); !errors.Is(err, ErrClosed) {
		t.Errorf("Logits after Close: %v", err)
	}
	var nilc *Classifier
	if err := nilc.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
}
