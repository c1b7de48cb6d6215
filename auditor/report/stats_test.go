package report_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/integrate"
	"gonum.org/v1/gonum/stat"

	"github.com/marginaudit/marginaudit/auditor/report"
)

// Reference values: "scipy" is scipy 1.10.1 (Debian 12's python3-scipy),
// "sklearn" scikit-learn 1.2.1; "brute force" is a Python loop over
// itertools.permutations of y's ranks counting |Σ(rx−r̄)(ry−r̄)| ≥ observed,
// an implementation independent of ours.

func TestRanks(t *testing.T) {
	for _, tc := range []struct {
		x, want []float64
	}{
		{nil, []float64{}},
		{[]float64{3, 1, 2}, []float64{3, 1, 2}},
		{[]float64{10, 20, 20, 30}, []float64{1, 2.5, 2.5, 4}}, // ranks 2 and 3 shared
		{[]float64{5, 5, 5}, []float64{2, 2, 2}},
		{[]float64{2, -1, 2, 7, -1, 2}, []float64{4, 1.5, 4, 6, 1.5, 4}}, // scipy.stats.rankdata
	} {
		if got := report.Ranks(tc.x); !slices.Equal(got, tc.want) {
			t.Errorf("Ranks(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

func seq(lo, hi int) []float64 {
	var out []float64
	for i := lo; i <= hi; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestSpearman(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		x, y   []float64
		rho, p float64
		method report.PValueMethod
		tol    float64
	}{
		// By hand: only the identity and the reversal of 5 ranks reach
		// |ρ| = 1, so p = 2/5!.
		{"perfect", seq(1, 5), seq(1, 5), 1, 2.0 / 120, report.Exact, 1e-15},
		// By hand: ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 12/60 = 0.8. |ρ| ≥ 0.8 means
		// Σd² ≤ 2 (identity and 3 adjacent swaps) or Σd² ≥ 18 (their 4
		// reversals): p = 8/4!.
		{"hand", seq(1, 4), []float64{1, 2, 4, 3}, 0.8, 8.0 / 24, report.Exact, 1e-15},
		// ρ: scipy.stats.spearmanr; p: brute force (12 of 720).
		{"tie in y", seq(1, 6), []float64{1, 2, 2, 4, 3, 6}, 0.92763365704391754, 12.0 / 720, report.Exact, 1e-12},
		// ρ: scipy; p: brute force (408 of 5040).
		{"ties in x", []float64{1, 1, 2, 3, 3, 3, 4}, []float64{0.5, 0.1, 0.9, 1.2, 1.1, 1.3, 1.0}, 0.72976915885099181, 408.0 / 5040, report.Exact, 1e-12},
		// ρ: scipy; p: brute force (90 of 40320).
		{"negative", seq(1, 8), []float64{8, 6, 7, 5, 3, 4, 1, 2}, -0.92857142857142871, 90.0 / 40320, report.Exact, 1e-12},
		// The largest exact case, 10 epochs: ρ scipy, p brute force
		// (188 of 3628800; scipy's t approximation says 1.0e-05).
		{"ten", seq(1, 10), []float64{1.0, 1.4, 1.3, 1.9, 2.0, 2.0, 2.3, 2.1, 2.6, 2.5}, 0.96049075901450198, 188.0 / 3628800, report.Exact, 1e-12},
		// t approximation: scipy.stats.spearmanr(x, y).
		{"t 12", seq(1, 12), []float64{1.0, 1.3, 1.2, 2.0, 1.9, 2.4, 2.2, 2.2, 2.6, 2.5, 2.9, 2.7}, 0.94921336459845929, 2.4427417276402135e-06, report.StudentT, 1e-9},
		{"t 15", seq(1, 15), []float64{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9}, 0.69011809642479816, 0.0044063385703730466, report.StudentT, 1e-9},
		{"t perfect", seq(1, 12), seq(1, 12), 1, 0, report.StudentT, 0},
		// Degenerate: a constant sample has no ranks to correlate; two
		// pairs always have |ρ| = 1, reached by both permutations.
		{"constant", seq(1, 5), []float64{2, 2, 2, 2, 2}, nan, nan, report.Exact, 0},
		{"one", []float64{1}, []float64{2}, nan, nan, report.Exact, 0},
		{"two", []float64{1, 2}, []float64{5, 3}, -1, 1, report.Exact, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := report.Spearman(tc.x, tc.y)
			if got.N != len(tc.x) || got.Method != tc.method {
				t.Errorf("N %d method %s, want %d %s", got.N, got.Method, len(tc.x), tc.method)
			}
			if !close(got.Rho, tc.rho, tc.tol) {
				t.Errorf("ρ = %.17g, want %.17g", got.Rho, tc.rho)
			}
			if !close(got.P, tc.p, tc.tol) {
				t.Errorf("p = %.17g, want %.17g", got.P, tc.p)
			}
		})
	}
}

// close reports whether got is within a relative tolerance of want, NaN
// matching NaN.
func close(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestSpearmanPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for samples of different lengths")
		}
	}()
	report.Spearman([]float64{1, 2}, []float64{1})
}

func linspace(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	return out
}

func TestMannWhitney(t *testing.T) {
	squares := linspace(0, 1, 20)
	for i, v := range squares {
		squares[i] = v * v
	}
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		x, y     []float64
		u, p     float64
		negative bool // Z < 0: x tends to be smaller
		auc      float64
	}{
		// U, p: scipy.stats.mannwhitneyu(x, y, method="asymptotic",
		// use_continuity=True); AUROC of x as positives:
		// sklearn.metrics.roc_auc_score.
		{"small", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0.9, 1.2, 0.7, 1.5, 1.1}, 1, 0.037336415920662877, true, 0.049999999999999989},
		{"ties", []float64{1, 2, 2, 3, 3, 3}, []float64{2, 3, 4, 4, 5, 5, 6}, 5.5, 0.028410955971066798, true, 0.13095238095238099},
		{"same", []float64{1, 2, 3}, []float64{1, 2, 3}, 4.5, 1, false, 0.5},
		{"larger", []float64{0.9, 1.2, 0.7, 1.5, 1.1}, []float64{0.1, 0.4, 0.35, 0.8}, 19, 0.037336415920662877, false, 0.95},
		{"20 vs 25", squares, linspace(0.3, 1.4, 25), 72, 5.02662188287394e-05, true, 0.144},
		// Fully separated, as misclassified and correct margins of a
		// trained model can be: p far below what 1 − Φ(z) resolves.
		{"64 vs 436 separated", linspace(0, 63, 64), linspace(100, 535, 436), 0, 3.216815147072454e-38, true, 0},
		// All values tied: U = n_x·n_y/2 and no variance; scipy gives p = 1.
		{"all tied", []float64{2, 2}, []float64{2, 2, 2}, 3, 1, false, 0.5},
		{"empty", nil, []float64{1, 2}, nan, nan, false, nan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := report.MannWhitney(tc.x, tc.y)
			if !close(got.U, tc.u, 1e-12) || !close(got.P, tc.p, 1e-9) {
				t.Errorf("U = %.17g, p = %.17g; want %.17g, %.17g", got.U, got.P, tc.u, tc.p)
			}
			if got.NX != len(tc.x) || got.NY != len(tc.y) || got.Method != report.Normal {
				t.Errorf("n %d, %d, method %s", got.NX, got.NY, got.Method)
			}
			if !math.IsNaN(tc.p) && (got.Z < 0) != tc.negative {
				t.Errorf("Z = %v, want negative %v", got.Z, tc.negative)
			}
			if auc := report.AUROC(tc.x, tc.y); !close(auc, tc.auc, 1e-12) {
				t.Errorf("AUROC = %.17g, want %.17g", auc, tc.auc)
			}
		})
	}
}

// The rank formula equals the trapezoidal area under the empirical ROC
// curve (gonum's stat.ROC), ties included.
func TestAUROCTrapezoid(t *testing.T) {
	rng := splitmix64(7)
	for trial := range 20 {
		var pos, neg []float64
		for range 5 + trial {
			// Rounded to 0.1 so that many scores tie.
			pos = append(pos, math.Round(10*(rng.norm()+1))/10)
		}
		for range 3 + 2*trial {
			neg = append(neg, math.Round(10*rng.norm())/10)
		}
		type scored struct {
			s   float64
			pos bool
		}
		var all []scored
		for _, v := range pos {
			all = append(all, scored{v, true})
		}
		for _, v := range neg {
			all = append(all, scored{v, false})
		}
		slices.SortFunc(all, func(a, b scored) int {
			switch {
			case a.s < b.s:
				return -1
			case a.s > b.s:
				return 1
			}
			return 0
		})
		y := make([]float64, len(all))
		classes := make([]bool, len(all))
		for i, a := range all {
			y[i], classes[i] = a.s, a.pos
		}
		tpr, fpr, _ := stat.ROC(nil, y, classes, nil)
		want := integrate.Trapezoidal(fpr, tpr)
		if got := report.AUROC(pos, neg); math.Abs(got-want) > 1e-12 {
			t.Errorf("trial %d: AUROC %v, trapezoid %v", trial, got, want)
		}
	}
}

func TestRelativeChange(t *testing.T) {
	for _, tc := range []struct{ from, to, want float64 }{
		{2, 3, 0.5},
		{4, 1, -0.75},
		{0, 1, math.NaN()},
		{math.NaN(), 1, math.NaN()},
	} {
		if got := report.RelativeChange(tc.from, tc.to); !close(got, tc.want, 1e-15) {
			t.Errorf("RelativeChange(%v, %v) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

// The mean margins of 10 epochs after the first, flattening out: the
// trend is tested exactly.
func ExampleSpearman() {
	epochs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	means := []float64{0.82, 1.02, 1.17, 1.28, 1.32, 1.36, 1.39, 1.38, 1.42, 1.41}
	r := report.Spearman(epochs, means)
	fmt.Printf("ρ = %.3f, p = %.1e (%s, n = %d)\n", r.Rho, r.P, r.Method, r.N)
	// Output:
	// ρ = 0.976, p = 2.1e-05 (exact, n = 10)
}

// Margins of misclassified images against those of correctly classified
// ones.
func ExampleMannWhitney() {
	incorrect := []float64{0.12, 0.31, 0.08, 0.45, 0.22}
	correct := []float64{0.95, 1.31, 0.41, 1.12, 0.88, 1.54, 0.67}
	r := report.MannWhitney(incorrect, correct)
	fmt.Printf("U = %g of %d pairs, z = %.2f, p = %.4f\n", r.U, r.NX*r.NY, r.Z, r.P)
	fmt.Printf("AUROC of a small margin: %.3f\n", report.AUROC(negate(incorrect), negate(correct)))
	// Output:
	// U = 1 of 35 pairs, z = -2.60, p = 0.0094
	// AUROC of a small margin: 0.971
}

func negate(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = -v
	}
	return out
}
