package compare

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Method says how a p-value or interval was computed.
type Method string

// The methods of the paired tests.
const (
	// Exact: the exact null distribution of the statistic (all 2ⁿ sign
	// patterns for Wilcoxon, the binomial distribution for McNemar).
	Exact Method = "exact"
	// Normal: the statistic standardised under the null hypothesis and
	// compared with the standard normal distribution.
	Normal Method = "normal"
	// ChiSquare: McNemar's statistic with continuity correction compared
	// with the χ² distribution with one degree of freedom.
	ChiSquare Method = "chi-square"
	// StudentT: the t-interval of a mean, with n − 1 degrees of freedom.
	StudentT Method = "t"
)

// AverageRanks returns the ranks of x, 1 for the smallest value, with tied
// values given the average of the ranks they span (so {10, 20, 20, 30} has
// ranks {1, 2.5, 2.5, 4}), and Σ(t³ − t) over the groups of t tied values,
// the tie term of the rank statistics' variances. x is not modified. It
// panics if x holds a NaN, which has no rank (a programmer error: callers
// drop undefined values first).
func AverageRanks(x []float64) (ranks []float64, tieTerm float64) {
	idx := make([]int, len(x))
	for i, v := range x {
		if math.IsNaN(v) {
			panic("compare: rank of NaN")
		}
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	ranks = make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && x[idx[j]] == x[idx[i]] {
			j++
		}
		// Positions i…j−1 (0-based) hold ranks i+1…j; their average:
		avg := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			ranks[idx[k]] = avg
		}
		t := float64(j - i)
		tieTerm += t*t*t - t
		i = j
	}
	return ranks, tieTerm
}

// normalTwoSided returns the two-sided p-value 2·Φ(−|z|), through erfc so
// that it stays accurate far in the tail (1 − CDF rounds to 0 beyond
// z ≈ 8.3).
func normalTwoSided(z float64) float64 {
	return math.Min(1, math.Erfc(math.Abs(z)/math.Sqrt2))
}

// MeanInterval is the mean of a sample with its two-sided confidence
// interval.
type MeanInterval struct {
	N     int     // sample size
	Mean  float64 // NaN when N = 0
	SE    float64 // standard error s/√N, with the n − 1 denominator; NaN when N < 2
	Level float64 // confidence level, such as 0.95
	Lo    float64 // lower end of the interval; NaN when N < 2
	Hi    float64 // upper end; NaN when N < 2
}

// TInterval returns the mean of x and its Student t confidence interval
// at level (such as 0.95): mean ± t_{(1+level)/2, n−1} · s/√n. Applied to
// paired differences it is the paired t-interval; it assumes the mean is
// roughly normal, which holds for the sample sizes of an audit (dozens of
// images and more) unless the differences are very skewed, when the
// Wilcoxon test beside it is the safer guide.
func TInterval(x []float64, level float64) MeanInterval {
	n := len(x)
	res := MeanInterval{N: n, Mean: math.NaN(), SE: math.NaN(), Level: level, Lo: math.NaN(), Hi: math.NaN()}
	if n == 0 {
		return res
	}
	var sum float64
	for _, v := range x {
		sum += v
	}
	mean := sum / float64(n)
	res.Mean = mean
	if n < 2 {
		return res
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	res.SE = math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile((1 + level) / 2)
	res.Lo, res.Hi = mean-t*res.SE, mean+t*res.SE
	return res
}
