package compare

import "math"

// ExactWilcoxonMax is the largest number of non-zero differences for which
// Wilcoxon computes the exact p-value (when there are no ties and no
// zeros); larger samples use the normal approximation, as
// scipy.stats.wilcoxon does by default.
const ExactWilcoxonMax = 50

// WilcoxonResult is Wilcoxon's signed-rank test of paired differences.
type WilcoxonResult struct {
	N      int     // non-zero differences, the sample of the test
	Zeros  int     // zero differences, left out (Wilcoxon's own treatment)
	WPlus  float64 // sum of the ranks of |d| of the positive differences
	WMinus float64 // sum of the ranks of the negative ones; WPlus + WMinus = N(N+1)/2
	Z      float64 // standardised WPlus for the normal approximation; NaN when exact
	P      float64 // two-sided p-value; 1 when every difference is 0, NaN without differences
	Method Method  // Exact or Normal
}

// Wilcoxon tests whether the paired differences d (candidate − baseline)
// are symmetric about 0 against the two-sided alternative that they tend
// to one side.
//
// Zero differences are dropped and the test runs on the N others
// (zero_method="wilcox" in scipy). |d| is ranked with average ranks for
// ties. With N ≤ ExactWilcoxonMax, no ties among |d| and no zeros, the
// p-value is exact: 2·min(P(W⁺ ≤ w), P(W⁺ ≥ w)) under the distribution of
// W⁺ over all 2ᴺ sign patterns, at most 1. Otherwise it uses the normal
// approximation with the tie correction and no continuity correction
// (scipy's defaults):
//
//	μ  = N(N+1)/4
//	σ² = N(N+1)(2N+1)/24 − Σ(t³−t)/48      t: sizes of groups of tied |d|
//	Z  = (W⁺ − μ)/σ,   P = 2·Φ(−|Z|)
//
// It panics if d holds a NaN.
func Wilcoxon(d []float64) WilcoxonResult {
	res := WilcoxonResult{Z: math.NaN(), P: math.NaN(), Method: Exact}
	abs := make([]float64, 0, len(d))
	sign := make([]bool, 0, len(d))
	for _, v := range d {
		switch {
		case math.IsNaN(v):
			panic("compare: Wilcoxon of NaN")
		case v == 0:
			res.Zeros++
		default:
			abs = append(abs, math.Abs(v))
			sign = append(sign, v > 0)
		}
	}
	n := len(abs)
	res.N = n
	if n == 0 {
		if res.Zeros > 0 {
			res.P = 1
		}
		return res
	}
	ranks, ties := AverageRanks(abs)
	for i, r := range ranks {
		if sign[i] {
			res.WPlus += r
		} else {
			res.WMinus += r
		}
	}
	if n <= ExactWilcoxonMax && ties == 0 && res.Zeros == 0 {
		res.P = exactWilcoxonP(n, int(res.WPlus))
		return res
	}
	res.Method = Normal
	res.Z, res.P = wilcoxonNormal(n, res.WPlus, ties)
	return res
}

// wilcoxonNormal returns the standardised W⁺ of n non-zero differences
// with tie term ties (Σ(t³−t)) and its two-sided p-value; Z = 0 and P = 1
// when the variance vanishes.
func wilcoxonNormal(n int, wPlus, ties float64) (z, p float64) {
	fn := float64(n)
	mu := fn * (fn + 1) / 4
	variance := fn*(fn+1)*(2*fn+1)/24 - ties/48
	if variance <= 0 {
		return 0, 1
	}
	z = (wPlus - mu) / math.Sqrt(variance)
	return z, normalTwoSided(z)
}

// exactWilcoxonP returns the exact two-sided p-value of W⁺ = w for n
// differences without ties: count[s] is the number of subsets of the ranks
// {1, …, n} that sum to s, built one rank at a time (a subset sum table;
// counts stay below 2⁵⁰, exact in float64 for n ≤ ExactWilcoxonMax).
func exactWilcoxonP(n, w int) float64 {
	max := n * (n + 1) / 2
	count := make([]float64, max+1)
	count[0] = 1
	for r := 1; r <= n; r++ {
		for s := max; s >= r; s-- {
			count[s] += count[s-r]
		}
	}
	var le, ge float64
	for s, c := range count {
		if s <= w {
			le += c
		}
		if s >= w {
			ge += c
		}
	}
	total := math.Ldexp(1, n)
	return math.Min(1, 2*math.Min(le, ge)/total)
}
