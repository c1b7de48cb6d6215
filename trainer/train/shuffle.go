package train

import (
	"math/bits"
	"math/rand/v2"
)

// shuffleStream separates the shuffling's random streams from the weight
// initialisation's (see model.Model.Init), which uses the same seed.
const shuffleStream = 0x73687566 << 32 // "shuf"

// Shuffle returns the order in which epoch (1-based) of a run with the given
// seed visits n training images: a permutation of 0…n−1 that depends only on
// (seed, epoch, n), so that a resumed run sees the same batches. It is a
// Fisher–Yates shuffle driven by PCG(seed, "shuf"<<32 | epoch), with the
// bounded draws made here rather than by math/rand, whose algorithms Go may
// change.
func Shuffle(seed uint64, epoch, n int) []int {
	r := rand.NewPCG(seed, shuffleStream|uint64(uint32(epoch)))
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		// ⌊u·(i+1)/2⁶⁴⌋ is uniform on 0…i up to a bias below (i+1)/2⁶⁴.
		hi, _ := bits.Mul64(r.Uint64(), uint64(i+1))
		j := int(hi)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
