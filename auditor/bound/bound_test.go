package bound_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/bench/bound/crownref"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

const modelsDir = "../../testdata/models"

// fixture loads testdata/models/NAME.onnx and its images.
func fixture(t testing.TB, name string) (*onnxpb.ModelProto, []float32) {
	t.Helper()
	m, err := onnxgrad.Load(filepath.Join(modelsDir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile(filepath.Join(modelsDir, name+".x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return m, x.Data
}

func certifier(t testing.TB, m *onnxpb.ModelProto, opt attack.Options) (*attack.Classifier, *bound.Certifier) {
	t.Helper()
	orttest.Require(t)
	c, err := attack.NewClassifier(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ct, err := bound.New(c, bound.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	return c, ct
}

// refLower is crownref's bound: the minimum over the other classes.
func refLower(net *bound.Net, x []float32, pred int, eps float64, norm attack.Norm, lo, hi float64) float64 {
	xd := make([]float64, len(x))
	for i, v := range x {
		xd[i] = float64(v)
	}
	m := math.Inf(1)
	for _, v := range crownref.Lower(net, crownref.Ball{X: xd, Eps: eps, Norm: norm, Lo: lo, Hi: hi}, pred) {
		m = min(m, v)
	}
	return m
}

func TestLowerMatchesReference(t *testing.T) {
	for _, name := range []string{"mlp", "cnn_small", "cnn"} {
		m, x := fixture(t, name)
		c, ct := certifier(t, m, attack.Options{})
		d := c.SampleSize()
		n := min(3, len(x)/d)
		x = x[:n*d]
		pred, err := c.Predict(x, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, norm := range []attack.Norm{attack.L2, attack.LInf} {
			for _, e := range []float64{0, 0.003, 0.03, 0.3} {
				eps := []float64{e, e, e}[:n]
				got, err := ct.Lower(x, pred, eps, norm)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					want := refLower(ct.Net(), x[i*d:(i+1)*d], pred[i], e, norm, 0, 1)
					t.Logf("%s %v eps %v image %d: graph %.6g ref %.6g", name, norm, e, i, got[i], want)
				}
			}
		}
	}
}
