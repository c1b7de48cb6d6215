package compare

import "math"

// ExactMcNemarMax is the number of discordant pairs below which McNemar
// uses the exact binomial test; from it on, the χ² approximation with
// continuity correction (a common rule: the approximation is good once
// b + c ≥ 25).
const ExactMcNemarMax = 25

// McNemarResult is McNemar's test of paired binary outcomes, such as
// whether each image is classified correctly by two models.
type McNemarResult struct {
	// Lost counts the pairs true for the baseline and false for the
	// candidate (b), Gained those false for the baseline and true for the
	// candidate (c): the discordant pairs.
	Lost, Gained int
	Stat         float64 // χ² with continuity correction; NaN when exact
	P            float64 // two-sided p-value; 1 without discordant pairs
	Method       Method  // Exact or ChiSquare
}

// McNemar tests whether the two discordant counts b (lost) and c (gained)
// differ more than chance allows, the null hypothesis being that a
// discordant pair is equally likely to go either way. For b + c <
// ExactMcNemarMax the p-value is the exact two-sided binomial one,
// 2·P(X ≤ min(b, c)) with X ~ Binomial(b + c, ½), at most 1; otherwise
// χ² = (|b − c| − 1)²/(b + c) is compared with χ² on one degree of
// freedom: P = erfc(√(χ²/2)).
func McNemar(b, c int) McNemarResult {
	res := McNemarResult{Lost: b, Gained: c, Stat: math.NaN(), P: 1, Method: Exact}
	n := b + c
	switch {
	case n == 0:
		return res
	case n < ExactMcNemarMax:
		// P(X ≤ k) for X ~ Binomial(n, ½): Σ C(n, i) / 2ⁿ, exact in float64
		// for n < 53.
		k := min(b, c)
		var sum, binom float64 = 0, 1
		for i := 0; i <= k; i++ {
			sum += binom
			binom = binom * float64(n-i) / float64(i+1)
		}
		res.P = math.Min(1, 2*sum/math.Ldexp(1, n))
		return res
	}
	d := math.Abs(float64(b-c)) - 1
	if d < 0 {
		d = 0
	}
	res.Method = ChiSquare
	res.Stat = d * d / float64(n)
	res.P = math.Erfc(math.Sqrt(res.Stat / 2))
	return res
}
