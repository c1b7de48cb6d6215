package attack

import (
	"testing"
)

// TestClassifierModel: Model returns the graph the classifier runs, with
// the normalisation in front, as a copy that callers may change.
func TestClassifierModel(t *testing.T) {
	m, _ := fixture(t, "mlp")
	c := newClassifier(t, m, Options{Mean: []float32{0.1}, Std: []float32{0.3}})
	got := c.Model()
	g := got.GetGraph()
	if len(g.GetOutput()) != 1 || g.GetNode()[0].GetOpType() != "Sub" || g.GetNode()[1].GetOpType() != "Div" {
		t.Fatalf("want the normalisation first and one output; got nodes %v…, %d outputs", g.GetNode()[0].GetOpType(), len(g.GetOutput()))
	}
	g.Node = nil
	if len(c.Model().GetGraph().GetNode()) == 0 {
		t.Fatal("changing the returned model changed the classifier's")
	}
}
