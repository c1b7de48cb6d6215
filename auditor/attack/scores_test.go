package attack

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// logitsTwin returns a copy of m, whose output is computed by a Softmax,
// without that Softmax: the logits under the output's name.
func logitsTwin(t *testing.T, m *onnxpb.ModelProto) *onnxpb.ModelProto {
	t.Helper()
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	out := g.GetOutput()[0].GetName()
	i := slices.IndexFunc(g.GetNode(), func(n *onnxpb.NodeProto) bool { return slices.Contains(n.GetOutput(), out) })
	if i < 0 || g.GetNode()[i].GetOpType() != "Softmax" {
		t.Fatalf("output %q is not computed by a Softmax", out)
	}
	z := g.GetNode()[i].GetInput()[0]
	g.Node = slices.Delete(g.Node, i, i+1)
	for _, n := range g.GetNode() {
		for j, o := range n.GetOutput() {
			if o == z {
				n.Output[j] = out
			}
		}
	}
	return m
}

// sharedSoftmax returns a copy of m whose output's values are also read by
// a second output, so that the classifier cannot replace the Softmax and
// takes the log of the probabilities.
func sharedSoftmax(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	out := g.GetOutput()[0].GetName()
	for _, n := range g.GetNode() {
		for j, o := range n.GetOutput() {
			if o == out {
				n.Output[j] = "p"
			}
		}
	}
	g.Node = append(g.Node, node("Identity", []string{"p"}, out), node("Identity", []string{"p"}, "copy"))
	g.Output = append(g.Output, valueInfo("copy", "N", 10))
	return m
}

// TestClassifierScoreSources attacks one network in four forms, which all
// must give the margins of its logits: logits (misc_softmax without its
// Softmax), softmax (misc_softmax, the Softmax replaced by a LogSoftmax),
// log-softmax (misc_logsoftmax, same weights) and the softmax read by a
// second output (the log of the probabilities appended). Log-probabilities
// differ from the logits by a per-image constant, rounded in float32 to
// ~1e-7 of the scores, so margins, steps and PGD results agree to 1e-4.
func TestClassifierScoreSources(t *testing.T) {
	ms, xa := fixture(t, "misc_softmax")
	ml, _ := fixture(t, "misc_logsoftmax")
	forms := []struct {
		name   string
		m      *onnxpb.ModelProto
		source ScoreSource
	}{
		{"logits", logitsTwin(t, ms), ScoresLogits},
		{"softmax", ms, ScoresSoftmaxReplaced},
		{"log-softmax", ml, ScoresLogSoftmax},
		{"shared softmax", sharedSoftmax(ms), ScoresLogOfProbabilities},
	}
	const n = 24
	var x []float32
	var labels []int
	type outcome struct {
		margins map[Norm][]DeepFoolResult
		robust  []int
	}
	var ref *outcome
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			c := newClassifier(t, f.m, Options{Name: f.name, Threads: 2})
			if c.ScoreSource() != f.source {
				t.Fatalf("scores %q, want %q", c.ScoreSource(), f.source)
			}
			if x == nil {
				x = tile(xa.Data, c.SampleSize(), n, 0.05, 3)
				pred, err := c.Predict(x, n)
				if err != nil {
					t.Fatal(err)
				}
				// Labels: the prediction for two thirds of the images.
				labels = slices.Clone(pred)
				for i := 0; i < n; i += 3 {
					labels[i] = (pred[i] + 1) % c.NumClasses()
				}
			}
			got := &outcome{margins: map[Norm][]DeepFoolResult{}}
			for _, norm := range []Norm{L2, LInf} {
				opt := DefaultDeepFoolOptions(norm)
				res, err := DeepFool(context.Background(), c, x, labels, opt)
				if err != nil {
					t.Fatal(err)
				}
				got.margins[norm] = res
			}
			for _, eps := range []float64{0.02, 0.05} {
				r, err := RobustAccuracy(context.Background(), c, x, labels, PGDOptions{Norm: LInf, Eps: eps, PGDParams: PGDParams{Step: eps / 4, Steps: 10, RandomStart: true}, Seed: 4})
				if err != nil {
					t.Fatal(err)
				}
				got.robust = append(got.robust, r.Correct, r.Robust)
			}
			if ref == nil {
				ref = got
				var sum float64
				for _, r := range got.margins[L2] {
					sum += r.Margin
				}
				t.Logf("mean L2 margin %.4g; PGD correct, robust at ε = 0.02, 0.05: %v", sum/n, got.robust)
				return
			}
			for norm, res := range got.margins {
				sameDeepFool(t, norm.String(), res, ref.margins[norm], 1e-4)
			}
			if !slices.Equal(got.robust, ref.robust) {
				t.Errorf("PGD correct, robust: %v; the logits give %v", got.robust, ref.robust)
			}
		})
	}
}
