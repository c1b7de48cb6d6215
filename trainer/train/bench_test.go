package train

import (
	"math/rand/v2"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

// BenchmarkStep times one training step (forward, backward, Adam update) at
// batch 128 on random 28×28 images, for the study's MNIST MLP and
// Fashion-MNIST CNN; multiply by 469 for an epoch of 60,000 images.
//
//	go test -run '^$' -bench Step -count 10 ./trainer/train/ | benchstat -
func BenchmarkStep(b *testing.B) {
	orttest.Require(b)
	for _, arch := range []model.Arch{{Kind: model.MLP}, {Kind: model.CNN}} {
		b.Run(arch.Kind, func(b *testing.B) {
			const batch, k = 128, 10
			m, err := model.New(arch, 1, 28, 28, k)
			if err != nil {
				b.Fatal(err)
			}
			m.Init(1)
			nt, err := newNet(m, 0, batch, batch)
			if err != nil {
				b.Fatal(err)
			}
			defer nt.Close()
			names, sizes, params := []string{}, []int{}, [][]float32{}
			for _, p := range m.Params {
				names, sizes, params = append(names, p.Name), append(sizes, len(p.Data)), append(params, p.Data)
			}
			opt, err := optim.New(optim.Config{Name: optim.Adam, LR: 1e-4}, names, sizes)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, batch*28*28)
			for i := range x {
				x[i] = float32(r.Float64())
			}
			target := make([]float32, batch*k)
			for i := range batch {
				target[i*k+r.IntN(k)] = 1
			}
			logits := make([]float32, batch*k)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := nt.step(x, target, logits, batch); err != nil {
					b.Fatal(err)
				}
				opt.Step(1e-4, params, nt.grads)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
