package optim

import (
	"fmt"
	"testing"
)

// BenchmarkStep times one update of the weights of the study's MNIST MLP
// (269,322 values) and Fashion-MNIST CNN (421,642).
func BenchmarkStep(b *testing.B) {
	for _, name := range []string{SGD, Adam} {
		for _, n := range []int{269322, 421642} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				o, err := New(Config{Name: name, Momentum: 0.9}, []string{"w"}, []int{n})
				if err != nil {
					b.Fatal(err)
				}
				w, g := [][]float32{make([]float32, n)}, [][]float32{make([]float32, n)}
				for i := range g[0] {
					g[0][i] = float32(i%7) - 3
				}
				b.ReportAllocs()
				b.SetBytes(int64(4 * n))
				for range b.N {
					o.Step(1e-3, w, g)
				}
			})
		}
	}
}
