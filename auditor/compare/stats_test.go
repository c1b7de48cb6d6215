package compare

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAverageRanks(t *testing.T) {
	for _, tc := range []struct {
		x, want []float64
		ties    float64
	}{
		{nil, []float64{}, 0},
		{[]float64{10, 20, 20, 30}, []float64{1, 2.5, 2.5, 4}, 6},
		{[]float64{3, 1, 2}, []float64{3, 1, 2}, 0},
		{[]float64{5, 5, 5}, []float64{2, 2, 2}, 24},
	} {
		got, ties := AverageRanks(tc.x)
		if !slices.Equal(got, tc.want) || ties != tc.ties {
			t.Errorf("AverageRanks(%v) = %v, %v; want %v, %v", tc.x, got, ties, tc.want, tc.ties)
		}
	}
}

// fisher are Fisher's differences of height between cross- and
// self-fertilised plants (Darwin's data), the example of
// scipy.stats.wilcoxon's documentation: W⁻ = 24, exact two-sided
// p = 0.041259765625, normal approximation p = 0.04088813291185591.
var fisher = []float64{6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75}

func TestWilcoxon(t *testing.T) {
	for _, tc := range []struct {
		name          string
		d             []float64
		n, zeros      int
		wPlus, wMinus float64
		p             float64
		method        Method
	}{
		{"fisher", fisher, 15, 0, 96, 24, 0.041259765625, Exact},
		{"mirrored fisher", scaled(fisher, -1), 15, 0, 24, 96, 0.041259765625, Exact},
		// By hand: |d| = 1 1 2 2 2 3 3 4 has ranks 1.5 1.5 4 4 4 6.5 6.5 8,
		// tie term (2³−2)+(3³−3)+(2³−2) = 36, W⁺ = 28, μ = 18,
		// σ² = 8·9·17/24 − 36/48 = 50.25, Z = 10/√50.25 = 1.41069,
		// p = erfc(Z/√2) = 0.15833567752137873.
		{"ties and zeros", []float64{1, -1, 2, 2, 2, 3, -3, 4, 0, 0}, 8, 2, 28, 8, 0.15833567752137873, Normal},
		// Ties alone also switch to the normal approximation.
		{"all tied", []float64{1, 1, -1, -1}, 4, 0, 5, 5, 1, Normal},
		{"zeros only", []float64{0, 0}, 0, 2, 0, 0, 1, Exact},
		// Smallest p of n = 3: W⁺ = 6 of 8 sign patterns, p = 2/8.
		{"n=3 all positive", []float64{1, 2, 3}, 3, 0, 6, 0, 0.25, Exact},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Wilcoxon(tc.d)
			if got.N != tc.n || got.Zeros != tc.zeros || got.WPlus != tc.wPlus || got.WMinus != tc.wMinus || got.Method != tc.method {
				t.Errorf("Wilcoxon = %+v, want N %d zeros %d W+ %v W- %v method %s", got, tc.n, tc.zeros, tc.wPlus, tc.wMinus, tc.method)
			}
			if math.Abs(got.P-tc.p) > 1e-12 {
				t.Errorf("P = %.17g, want %.17g", got.P, tc.p)
			}
		})
	}
	if got := Wilcoxon(nil); !math.IsNaN(got.P) {
		t.Errorf("Wilcoxon(nil).P = %v, want NaN", got.P)
	}
}

func scaled(x []float64, f float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = f * v
	}
	return out
}

// TestWilcoxonNormalFisher checks the normal approximation against the
// value scipy's documentation gives for Fisher's data with
// method="approx": n = 15, W⁺ = 96, p = 0.04088813291185591.
func TestWilcoxonNormalFisher(t *testing.T) {
	z, p := wilcoxonNormal(15, 96, 0)
	// μ = 60, σ² = 15·16·31/24 = 310.
	if wantZ := 36 / math.Sqrt(310); math.Abs(z-wantZ) > 1e-12 {
		t.Errorf("Z = %v, want %v", z, wantZ)
	}
	if math.Abs(p-0.04088813291185591) > 1e-12 {
		t.Errorf("P = %.17g, want 0.04088813291185591", p)
	}
}

// TestWilcoxonExactBruteForce compares the subset-sum table with a direct
// enumeration of all 2ⁿ sign patterns of random tie-free samples.
func TestWilcoxonExactBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + rng.IntN(12)
		d := make([]float64, n)
		for i := range d {
			// Distinct magnitudes i+1 plus a fraction, random signs.
			d[i] = float64(i+1) + rng.Float64()/2
			if rng.IntN(2) == 0 {
				d[i] = -d[i]
			}
		}
		rng.Shuffle(n, func(i, j int) { d[i], d[j] = d[j], d[i] })
		got := Wilcoxon(d)
		w := int(got.WPlus)
		var le, ge int
		for mask := range 1 << n {
			s := 0
			for r := 1; r <= n; r++ {
				if mask&(1<<(r-1)) != 0 {
					s += r
				}
			}
			if s <= w {
				le++
			}
			if s >= w {
				ge++
			}
		}
		want := math.Min(1, 2*float64(min(le, ge))/float64(uint(1)<<n))
		if got.Method != Exact || math.Abs(got.P-want) > 1e-15 {
			t.Fatalf("trial %d: Wilcoxon(%v) = %+v, want exact p %v", trial, d, got, want)
		}
	}
}

func TestMcNemar(t *testing.T) {
	for _, tc := range []struct {
		b, c   int
		p      float64
		method Method
		stat   float64
	}{
		{0, 0, 1, Exact, math.NaN()},
		// 2·P(X ≤ 1), X ~ Binomial(10, ½): 2·(1 + 10)/1024.
		{1, 9, 0.021484375, Exact, math.NaN()},
		{9, 1, 0.021484375, Exact, math.NaN()},
		{5, 5, 1, Exact, math.NaN()},
		// 2·P(X ≤ 0), X ~ Binomial(24, ½): the largest exact case.
		{0, 24, 2 / math.Ldexp(1, 24), Exact, math.NaN()},
		// χ² = (|15 − 30| − 1)²/45 = 196/45; p = erfc(√(χ²/2)).
		{15, 30, 0.03688842570704985, ChiSquare, 196.0 / 45},
		// Agresti's presidential approval example (b = 150, c = 86):
		// χ² = 63²/236 = 16.8178, p = 4.1145622813459415e-05.
		{150, 86, 4.1145622813459415e-05, ChiSquare, 63.0 * 63 / 236},
		{20, 20, 1, ChiSquare, 0},
	} {
		got := McNemar(tc.b, tc.c)
		if got.Lost != tc.b || got.Gained != tc.c || got.Method != tc.method {
			t.Errorf("McNemar(%d, %d) = %+v, want method %s", tc.b, tc.c, got, tc.method)
		}
		if math.Abs(got.P-tc.p) > 1e-12*math.Max(1, tc.p) || !sameFloat(got.Stat, tc.stat) {
			t.Errorf("McNemar(%d, %d): P %.17g stat %v, want %.17g, %v", tc.b, tc.c, got.P, got.Stat, tc.p, tc.stat)
		}
	}
}

// TestMcNemarExactBruteForce checks the binomial sums against Pascal's
// triangle.
func TestMcNemarExactBruteForce(t *testing.T) {
	row := []float64{1}
	for n := 1; n < ExactMcNemarMax; n++ {
		next := make([]float64, n+1)
		next[0], next[n] = 1, 1
		for k := 1; k < n; k++ {
			next[k] = row[k-1] + row[k]
		}
		row = next
		for b := 0; b <= n; b++ {
			var tail float64
			for k := 0; k <= min(b, n-b); k++ {
				tail += row[k]
			}
			want := math.Min(1, 2*tail/math.Ldexp(1, n))
			if got := McNemar(b, n-b).P; got != want {
				t.Fatalf("McNemar(%d, %d).P = %v, want %v", b, n-b, got, want)
			}
		}
	}
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-12
}

func TestTInterval(t *testing.T) {
	// {1, …, 5}: mean 3, s² = 2.5, SE = √(2.5/5); t(0.975, 4) = 2.7764451051977987
	// (tables give 2.776).
	got := TInterval([]float64{1, 2, 3, 4, 5}, 0.95)
	se := math.Sqrt(0.5)
	half := 2.7764451051977987 * se
	if got.N != 5 || got.Mean != 3 || math.Abs(got.SE-se) > 1e-15 || math.Abs(got.Lo-(3-half)) > 1e-9 || math.Abs(got.Hi-(3+half)) > 1e-9 {
		t.Errorf("TInterval = %+v, want mean 3 ± %v", got, half)
	}
	if one := TInterval([]float64{2}, 0.95); one.Mean != 2 || !math.IsNaN(one.Lo) || !math.IsNaN(one.SE) {
		t.Errorf("TInterval of one value = %+v, want mean 2 and no interval", one)
	}
	if none := TInterval(nil, 0.95); !math.IsNaN(none.Mean) {
		t.Errorf("TInterval(nil) = %+v, want NaN mean", none)
	}
}
