package report

import (
	"math"
	"slices"
	"testing"
)

// R(ε) counts the margins strictly above ε, and every failed attack as
// above every ε.
func TestRobustCurve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		margins []float64
		failed  int
		eps     []float64
		want    []float64
	}{
		{"empty sample", nil, 0, []float64{0}, []float64{math.NaN()}},
		{"all failed", nil, 2, []float64{0, 5}, []float64{1, 1}},
		{"ties count as not above", []float64{1, 2, 2, 3}, 0, []float64{0, 1, 2, 2.5, 3, 4}, []float64{1, 0.75, 0.25, 0.25, 0, 0}},
		{"unsorted, with failures", []float64{3, 1, 2}, 1, []float64{0, 1.5, 10}, []float64{1, 0.75, 0.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := robustCurve(tc.margins, tc.failed, tc.eps)
			if !slices.EqualFunc(got, tc.want, func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
				t.Errorf("robustCurve(%v, %d, %v) = %v, want %v", tc.margins, tc.failed, tc.eps, got, tc.want)
			}
		})
	}
}
