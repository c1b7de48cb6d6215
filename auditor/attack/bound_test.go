package attack

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// asInputs returns a copy of m whose initializers are graph inputs instead,
// and the bindings of those inputs to fresh copies of the initializers'
// values.
func asInputs(t *testing.T, m *onnxpb.ModelProto) (*onnxpb.ModelProto, []BoundInput) {
	t.Helper()
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	var bound []BoundInput
	for _, init := range g.GetInitializer() {
		data, err := onnxgrad.TensorFloat32(init)
		if err != nil {
			t.Fatal(err)
		}
		bound = append(bound, BoundInput{Name: init.GetName(), Shape: slices.Clone(init.GetDims()), Data: slices.Clone(data)})
		dims := make([]any, len(init.GetDims()))
		for i, d := range init.GetDims() {
			dims[i] = int(d)
		}
		g.Input = append(g.Input, valueInfo(init.GetName(), dims...))
	}
	g.Initializer = nil
	return m, bound
}

// closeEnough reports the first index where got and want differ by more
// than tol relative to the largest |want|, or -1.
func closeEnough(got, want []float32, tol float64) int {
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol*scale {
			return i
		}
	}
	return -1
}

// TestClassifierBound checks a classifier whose weights are graph inputs
// bound to Go slices against one built from the same weights as
// initializers: scores, Jacobians, loss gradients and PGD agree, with and
// without an inserted normalisation; after the slices are changed in place,
// the same classifier (no new session) agrees with one built from the new
// weights.
func TestClassifierBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	cm := newConvModel(rng)
	const n = 12
	x := make([]float32, n*3*6*6)
	for i := range x {
		x[i] = rng.Float32()
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	for _, norm := range []bool{false, true} {
		name := "plain"
		opt := Options{Threads: 1}
		if norm {
			name = "normalised"
			opt.Mean, opt.Std = []float32{0.5, 0.4, 0.3}, []float32{0.2, 0.25, 0.3}
		}
		t.Run(name, func(t *testing.T) {
			init := cm.model(cm.w, cm.b)
			inputs, bound := asInputs(t, init)
			bopt := opt
			bopt.Bound = bound
			cb := newClassifier(t, inputs, bopt)
			compare := func(what string, ci *Classifier) {
				t.Helper()
				si, err := ci.Logits(x, n)
				if err != nil {
					t.Fatal(err)
				}
				sb, err := cb.Logits(x, n)
				if err != nil {
					t.Fatal(err)
				}
				if i := closeEnough(sb, si, 1e-6); i >= 0 {
					t.Fatalf("%s: score %d: %v bound, %v from initializers", what, i, sb[i], si[i])
				}
				_, ji, err := ci.Jacobian(x, n)
				if err != nil {
					t.Fatal(err)
				}
				_, jb, err := cb.Jacobian(x, n)
				if err != nil {
					t.Fatal(err)
				}
				if i := closeEnough(jb, ji, 1e-5); i >= 0 {
					t.Fatalf("%s: Jacobian %d: %v bound, %v from initializers", what, i, jb[i], ji[i])
				}
				gi, gb := make([]float32, len(x)), make([]float32, len(x))
				li, err := ci.LossGradient(gi, x, labels)
				if err != nil {
					t.Fatal(err)
				}
				lb, err := cb.LossGradient(gb, x, labels)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(li-lb) > 1e-6*li {
					t.Fatalf("%s: loss %v bound, %v from initializers", what, lb, li)
				}
				if i := closeEnough(gb, gi, 1e-5); i >= 0 {
					t.Fatalf("%s: loss gradient %d: %v bound, %v from initializers", what, i, gb[i], gi[i])
				}
			}
			ci := newClassifier(t, init, opt)
			if cb.Normalised() != norm || cb.NumClasses() != 10 || cb.SampleSize() != 3*6*6 {
				t.Fatalf("bound classifier: normalised %v, %d classes, %d pixels", cb.Normalised(), cb.NumClasses(), cb.SampleSize())
			}
			compare("initial weights", ci)
			before, err := cb.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}

			// New weights, written into the bound slices in place.
			w2 := make([]float32, len(cm.w))
			for i := range w2 {
				w2[i] = float32(0.5 * rng.NormFloat64())
			}
			for _, b := range bound {
				switch b.Name {
				case "w":
					copy(b.Data, w2)
				case "b":
					for i := range b.Data {
						b.Data[i] += 0.3
					}
				}
			}
			b2 := slices.Clone(cm.b)
			for i := range b2 {
				b2[i] += 0.3
			}
			after, err := cb.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			if closeEnough(after, before, 1e-3) < 0 {
				t.Fatalf("changing the bound weights left the scores as they were")
			}
			compare("updated weights", newClassifier(t, cm.model(w2, b2), opt))
		})
	}
}

// TestPGDBound runs PGD on the bound classifier and on the initializer one
// with the same seed: the adversarial images agree, and so does a second
// attack after Reseed, which repeats the first.
func TestPGDBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 22))
	cm := newConvModel(rng)
	init := cm.model(cm.w, cm.b)
	inputs, bound := asInputs(t, init)
	ci := newClassifier(t, init, Options{Threads: 1})
	cb := newClassifier(t, inputs, Options{Threads: 1, Bound: bound})
	const n = 8
	x := make([]float32, n*cb.SampleSize())
	for i := range x {
		x[i] = rng.Float32()
	}
	labels, err := ci.Predict(x, n)
	if err != nil {
		t.Fatal(err)
	}
	opt := PGDOptions{Norm: LInf, Eps: 0.05, PGDParams: PGDParams{Step: 0.01, Steps: 5, RandomStart: true}, Seed: 3}
	pi, err := NewPGD(ci, opt)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewPGD(cb, opt)
	if err != nil {
		t.Fatal(err)
	}
	attack := func(p *PGD) []float32 {
		adv := make([]float32, len(x))
		if err := p.Attack(context.Background(), adv, x, labels, nil); err != nil {
			t.Fatal(err)
		}
		return adv
	}
	ai, ab := attack(pi), attack(pb)
	// Sign steps of 0.01 from the same start: the images agree unless a
	// gradient component is so close to 0 that float32 rounding flips its
	// sign, which these random weights do not produce.
	if i := closeEnough(ab, ai, 1e-6); i >= 0 {
		t.Fatalf("pixel %d: %v bound, %v from initializers", i, ab[i], ai[i])
	}
	second := attack(pb)
	if slices.Equal(second, ab) {
		t.Errorf("a second attack drew the same random starts")
	}
	pb.Reseed(3)
	if again := attack(pb); !slices.Equal(again, ab) {
		t.Errorf("after Reseed(3) the attack differs from the first of a PGD seeded with 3")
	}
}

// TestClassifierBoundErrors checks the errors of bindings that do not fit
// the model.
func TestClassifierBoundErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 23))
	lin := newLinear(rng, 3, 4)
	inputs, bound := asInputs(t, lin.model()) // W [3, 4], b [3]
	newClassifier(t, inputs, Options{Bound: bound})
	w, b := bound[0], bound[1]
	for _, tc := range []struct {
		name  string
		m     *onnxpb.ModelProto
		bound []BoundInput
		msg   string
	}{
		{"unbound weight", inputs, []BoundInput{w}, "the model has 2 inputs besides the bound ones"},
		{"unknown", inputs, []BoundInput{w, b, {Name: "c", Shape: []int64{1}, Data: []float32{0}}}, "no input \"c\" to bind"},
		{"twice", inputs, []BoundInput{w, b, w}, "input \"W\" is bound twice"},
		{"size", inputs, []BoundInput{w, {Name: "b", Shape: []int64{3}, Data: []float32{1, 2}}}, "bound input \"b\": 2 values for shape [3]"},
		{"declared size", inputs, []BoundInput{w, {Name: "b", Shape: []int64{2}, Data: []float32{1, 2}}}, "declares size 3 in dimension 0"},
		{"rank", inputs, []BoundInput{{Name: "W", Shape: []int64{12}, Data: w.Data}, b}, "shape [12], but the model declares rank 2"},
		{"initializer", lin.model(), []BoundInput{b}, "bound input \"b\" is an initializer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClassifier(tc.m, Options{Name: "lin.onnx", Bound: tc.bound})
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "attack: lin.onnx: ") {
				t.Errorf("error %q; want it to start with \"attack: lin.onnx: \" and contain %q", err, tc.msg)
			}
		})
	}
}
