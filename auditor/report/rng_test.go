package report_test

import "math"

// splitmix64 is a tiny deterministic generator (Steele, Lea & Flood 2014),
// so that the synthetic audits, and the golden files made from them, do not
// depend on the Go version's math/rand streams.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform number in [0, 1) with 53 random bits.
func (s *splitmix64) float() float64 { return float64(s.next()>>11) / (1 << 53) }

// norm returns a standard normal number (Box–Muller).
func (s *splitmix64) norm() float64 {
	u := 1 - s.float() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*s.float())
}
