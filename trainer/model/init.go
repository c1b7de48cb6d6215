package model

import (
	"math"
	"math/rand/v2"
)

// initStream separates the initialisation's random stream from other
// streams derived from the same seed (the trainer's shuffling uses others).
const initStream = 0x696e6974 // "init"

// Init sets all weights from seed:
//
//   - weights of layers followed by a ReLU: He (Kaiming) normal,
//     N(0, 2/fan_in) (He et al. 2015, "Delving Deep into Rectifiers");
//   - weights of the last layer: Glorot (Xavier) uniform,
//     U(−a, a) with a = √(6/(fan_in+fan_out)) (Glorot & Bengio 2010);
//   - biases: zero.
//
// fan_in of a conv layer is in_channels·k·k and fan_out out_channels·k·k, as
// in PyTorch. The numbers come from a PCG generator (whose output Go fixes)
// through sampling code of this package rather than math/rand's
// distributions, which Go may change between releases.
func (m *Model) Init(seed uint64) {
	r := rand.New(rand.NewPCG(seed, initStream))
	for _, p := range m.Params {
		switch {
		case p.Bias:
			clear(p.Data)
		case p.Last:
			a := math.Sqrt(6 / float64(p.FanIn+p.FanOut))
			for i := range p.Data {
				p.Data[i] = float32(a * (2*unit(r) - 1))
			}
		default:
			std := math.Sqrt(2 / float64(p.FanIn))
			for i := range p.Data {
				p.Data[i] = float32(std * normal(r))
			}
		}
	}
}

// unit returns a uniform number in [0, 1) with 53 random bits.
func unit(r *rand.Rand) float64 {
	return float64(r.Uint64()>>11) / (1 << 53)
}

// normal returns a standard normal number by the Box–Muller transform
// (one of the pair; simplicity matters more here than speed).
func normal(r *rand.Rand) float64 {
	u := 1 - unit(r) // (0, 1]: log is finite
	v := unit(r)
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}
