package report

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/marginaudit/marginaudit/auditor/compare"
)

// Ranks returns the ranks of x, 1 for the smallest value, with tied values
// given the average of the ranks they span (so {10, 20, 20, 30} has ranks
// {1, 2.5, 2.5, 4}). x is not modified. It panics if x holds a NaN, which
// has no rank (a programmer error: callers drop undefined values first).
func Ranks(x []float64) []float64 {
	r, _ := ranksTies(x)
	return r
}

// ranksTies returns the average ranks of x and Σ(t³ − t) over the groups of
// t tied values (see compare.AverageRanks).
func ranksTies(x []float64) (ranks []float64, tieTerm float64) { return compare.AverageRanks(x) }

// ExactSpearmanMax is the largest sample for which Spearman computes an
// exact permutation p-value; larger samples use the t approximation.
// 10! = 3 628 800 permutations take about 20 ms.
const ExactSpearmanMax = 10

// PValueMethod says how a p-value was computed.
type PValueMethod string

// The methods of the p-values in a report.
const (
	// Exact: the permutation distribution of the statistic, enumerated
	// over all n! orderings of one sample's ranks (ties kept as they are).
	Exact PValueMethod = "exact"
	// StudentT: Spearman's ρ transformed to t = ρ·√((n−2)/(1−ρ²)) and
	// compared with Student's t distribution with n − 2 degrees of freedom,
	// as scipy.stats.spearmanr does.
	StudentT PValueMethod = "t"
	// Normal: a statistic standardised under the null hypothesis and
	// compared with the standard normal distribution.
	Normal PValueMethod = "normal"
)

// SpearmanResult is Spearman's rank correlation of two samples and its
// two-sided p-value under the null hypothesis of no association.
type SpearmanResult struct {
	N      int          // pairs
	Rho    float64      // Pearson correlation of the average ranks; NaN when a sample is constant or N < 2
	P      float64      // two-sided p-value; NaN with Rho
	Method PValueMethod // Exact for N ≤ ExactSpearmanMax, StudentT above
}

// Spearman returns Spearman's rank correlation ρ of the pairs (x[i], y[i])
// with average ranks for ties, and its two-sided p-value.
//
// For N ≤ ExactSpearmanMax the p-value is exact: the fraction of the N!
// permutations of y's ranks whose |ρ| is at least the observed |ρ|, ties
// kept as observed (a permutation test conditional on the tie pattern; with
// no ties it is the exact null distribution used by R's cor.test for small
// samples). Above, it is the t approximation with N − 2 degrees of freedom
// (scipy.stats.spearmanr's default); |ρ| = 1 then gives p = 0.
//
// It panics if x and y differ in length or hold a NaN.
func Spearman(x, y []float64) SpearmanResult {
	if len(x) != len(y) {
		panic("report: Spearman of samples of different lengths")
	}
	n := len(x)
	res := SpearmanResult{N: n, Rho: math.NaN(), P: math.NaN(), Method: StudentT}
	if n <= ExactSpearmanMax {
		res.Method = Exact
	}
	if n < 2 {
		return res
	}
	rx, ry := Ranks(x), Ranks(y)
	// Doubled centred ranks are integers: 2r − (n+1), with r a multiple of ½.
	a, b := make([]int64, n), make([]int64, n)
	var saa, sbb, sab int64
	for i := range n {
		a[i] = int64(math.Round(2*rx[i])) - int64(n+1)
		b[i] = int64(math.Round(2*ry[i])) - int64(n+1)
		saa += a[i] * a[i]
		sbb += b[i] * b[i]
		sab += a[i] * b[i]
	}
	if saa == 0 || sbb == 0 {
		return res
	}
	res.Rho = float64(sab) / math.Sqrt(float64(saa)*float64(sbb))
	if res.Method == Exact {
		res.P = exactSpearmanP(a, b, sab)
		return res
	}
	if math.Abs(res.Rho) >= 1 {
		res.Rho = math.Copysign(1, res.Rho)
		res.P = 0
		return res
	}
	df := float64(n - 2)
	t := res.Rho * math.Sqrt(df/(1-res.Rho*res.Rho))
	res.P = 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(t))
	return res
}

// exactSpearmanP returns the fraction of the permutations π of b for which
// |Σ a[i]·b[π(i)]| ≥ |obs|. It enumerates them with Heap's algorithm, which
// swaps two elements per step, so each step updates the sum in O(1); the sums
// are integers, so the comparison is exact.
func exactSpearmanP(a, b []int64, obs int64) float64 {
	n := len(b)
	p := append([]int64(nil), b...)
	if obs < 0 {
		obs = -obs
	}
	var s int64
	for i := range n {
		s += a[i] * p[i]
	}
	var count, total int64
	tally := func() {
		total++
		if s >= obs || -s >= obs {
			count++
		}
	}
	tally()
	c := make([]int, n)
	for i := 1; i < n; {
		if c[i] < i {
			j := 0
			if i%2 == 1 {
				j = c[i]
			}
			// Swapping p[i] and p[j] changes the sum by (a[i]−a[j])(p[j]−p[i]).
			s += (a[i] - a[j]) * (p[j] - p[i])
			p[i], p[j] = p[j], p[i]
			tally()
			c[i]++
			i = 1
		} else {
			c[i] = 0
			i++
		}
	}
	return float64(count) / float64(total)
}

// MannWhitneyResult is the Mann–Whitney U test of two independent samples.
type MannWhitneyResult struct {
	NX, NY int
	// U is the statistic of x: the number of pairs (x[i], y[j]) with
	// x[i] > y[j], ties counting ½. U/(NX·NY) estimates P(X > Y) + ½P(X = Y).
	U float64
	// Z is the standardised statistic with tie and continuity correction
	// (see MannWhitney); negative when x tends to be smaller than y.
	Z float64
	// P is the two-sided p-value from the normal approximation. NaN when a
	// sample is empty; 1 when all values are tied.
	P      float64
	Method PValueMethod // always Normal
}

// MannWhitney tests whether x and y come from the same distribution
// against the two-sided alternative that one tends to be larger, with the
// normal approximation to the distribution of U, corrected for ties and
// for continuity, as scipy.stats.mannwhitneyu(x, y, method="asymptotic",
// use_continuity=True) does:
//
//	U    = R_x − n_x(n_x+1)/2          R_x: sum of x's average ranks in x ∪ y
//	μ    = n_x·n_y/2
//	σ²   = n_x·n_y/12 · (n+1 − Σ(t³−t)/(n(n−1)))      t: sizes of tied groups
//	|Z|  = (|U − μ| − ½)/σ,   P = 2·(1 − Φ(|Z|)), at most 1
//
// The approximation is good when both samples have more than about 8
// values; the report states the sample sizes beside every p-value.
// It panics if x or y holds a NaN.
func MannWhitney(x, y []float64) MannWhitneyResult {
	nx, ny := len(x), len(y)
	res := MannWhitneyResult{NX: nx, NY: ny, U: math.NaN(), Z: math.NaN(), P: math.NaN(), Method: Normal}
	if nx == 0 || ny == 0 {
		return res
	}
	all := make([]float64, 0, nx+ny)
	all = append(append(all, x...), y...)
	ranks, ties := ranksTies(all)
	var rx float64
	for _, r := range ranks[:nx] {
		rx += r
	}
	fx, fy, n := float64(nx), float64(ny), float64(nx+ny)
	res.U = rx - fx*(fx+1)/2
	mu := fx * fy / 2
	variance := fx * fy / 12 * (n + 1 - ties/(n*(n-1)))
	d := math.Abs(res.U-mu) - 0.5
	if variance <= 0 {
		res.Z, res.P = 0, 1 // all values tied: no evidence either way
		return res
	}
	if d < 0 {
		d = 0
	}
	z := d / math.Sqrt(variance)
	// 2·Φ(−z) through erfc: gonum's Survival is 1 − CDF, which rounds to 0
	// beyond z ≈ 8.3 (a Fashion-MNIST audit had z = 9.7, p ≈ 2e-22).
	res.P = math.Min(1, math.Erfc(z/math.Sqrt2))
	if res.U < mu {
		z = -z
	}
	res.Z = z
	return res
}

// AUROC returns the area under the ROC curve of a score that should be
// higher for the positive cases: the probability that a random positive
// scores higher than a random negative, ties counting ½. It is computed with
// the rank formula (R_pos − n_pos(n_pos+1)/2)/(n_pos·n_neg), R_pos being the
// sum of the positives' average ranks among all scores, which equals the
// trapezoidal area under the empirical ROC curve. NaN when either sample is
// empty. It panics if a score is NaN.
func AUROC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	return MannWhitney(pos, neg).U / (float64(len(pos)) * float64(len(neg)))
}

// RelativeChange returns (to − from)/from, NaN when from is 0 or either is
// undefined.
func RelativeChange(from, to float64) float64 {
	if from == 0 || math.IsNaN(from) || math.IsNaN(to) {
		return math.NaN()
	}
	return (to - from) / from
}

// ratioSE returns the delta-method standard error of the ratio a/b of two
// independent means with standard errors sa and sb:
// |a/b|·√((sa/a)² + (sb/b)²). NaN when undefined.
func ratioSE(a, sa, b, sb float64) float64 {
	if a == 0 || b == 0 {
		return math.NaN()
	}
	r := a / b
	return math.Abs(r) * math.Hypot(sa/a, sb/b)
}
