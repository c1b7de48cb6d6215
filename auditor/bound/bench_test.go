package bound_test

import (
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
)

// BenchmarkLower times one bound-graph run (one bisection step) on the
// fixtures' images, per model and norm.
func BenchmarkLower(b *testing.B) {
	for _, name := range []string{"mlp", "cnn_small"} {
		m, x := fixture(b, name)
		c, ct := certifier(b, m, attack.Options{Threads: 2}, bound.Options{Threads: 2})
		n := len(x) / c.SampleSize()
		pred, err := c.Predict(x, n)
		if err != nil {
			b.Fatal(err)
		}
		eps := make([]float64, n)
		for _, norm := range norms {
			for i := range eps {
				eps[i] = 0.01
			}
			b.Run(name+"/"+norm.String(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ct.Lower(x, pred, eps, norm); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N*n)*1e3, "ms/image")
			})
		}
	}
}
