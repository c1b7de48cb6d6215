package train

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/model"
)

// TestAdversaryReplace checks the examples that replace a batch's first
// images: inside the ε-ball of their clean image (as float32 computes it) and
// in [0, 1], different from the clean images, with the rest of the batch
// untouched; a function of (seed, epoch, batch); and made against the weights
// as they are now, without a new adversary.
func TestAdversaryReplace(t *testing.T) {
	orttest.Require(t)
	const c, h, w, k, n = 1, 8, 8, 4, 10
	m, err := model.New(model.Arch{Kind: model.CNN, Channels: []int{4}, Hidden: []int{8}}, c, h, w, k)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(5)
	cfg := Adversarial{Norm: attack.LInf, Eps: 0.1, PGDParams: attack.PGDParams{Step: 0.03, Steps: 4, RandomStart: true}, Frac: 0.5}
	a, err := newAdversary(m, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := []int{a.count(128), a.count(33), a.count(1), a.count(0)}; !slices.Equal(got, []int{64, 17, 1, 0}) {
		t.Errorf("counts of 128, 33, 1, 0 images: %v, want 64, 17, 1, 0", got)
	}

	r := rand.New(rand.NewPCG(1, 1))
	const size = c * h * w
	clean := make([]float32, n*size)
	for i := range clean {
		clean[i] = r.Float32()
	}
	clean[3] = 0 // pixels at the range's ends: the clip must hold them in
	clean[4] = 1
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(k)
	}
	const nAdv = 5
	run := func(e, b int) []float32 {
		x := slices.Clone(clean)
		if err := a.replace(context.Background(), x, labels, nAdv, size, 42, e, b); err != nil {
			t.Fatal(err)
		}
		return x
	}
	x := run(1, 0)
	eps := float32(cfg.Eps)
	for i := range nAdv {
		changed := 0
		for j := i * size; j < (i+1)*size; j++ {
			v, v0 := x[j], clean[j]
			if v < 0 || v > 1 || v < v0-eps || v > v0+eps {
				t.Fatalf("image %d pixel %d: %v, clean %v: outside [0, 1] or the ε-ball", i, j-i*size, v, v0)
			}
			if v != v0 {
				changed++
			}
		}
		if changed < size/2 {
			t.Errorf("image %d: only %d of %d pixels changed", i, changed, size)
		}
	}
	if !slices.Equal(x[nAdv*size:], clean[nAdv*size:]) {
		t.Errorf("the images after the first %d changed", nAdv)
	}
	if !slices.Equal(run(1, 0), x) {
		t.Errorf("the same (seed, epoch, batch) gave other examples")
	}
	if slices.Equal(run(1, 1), x) || slices.Equal(run(2, 0), x) {
		t.Errorf("another batch or epoch gave the same examples")
	}

	// New weights, written in place as the optimizer does: the adversary
	// attacks them, as a new adversary on a copy of the model does.
	for _, p := range m.Params {
		for j := range p.Data {
			p.Data[j] += float32(0.05 * r.NormFloat64())
		}
	}
	moved := run(1, 0)
	if slices.Equal(moved, x) {
		t.Fatalf("the examples did not change with the weights")
	}
	fresh, err := newAdversary(m.Clone(), cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	y := slices.Clone(clean)
	if err := fresh.replace(context.Background(), y, labels, nAdv, size, 42, 1, 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y, moved) {
		t.Errorf("after a weight update the adversary's examples differ from those of a new adversary")
	}
}

// TestAdvSeed pins the seeds of the random starts: changing them would
// change every adversarially trained model and break the resumption of runs
// begun before the change. The value was computed independently, in Python,
// from the definition.
func TestAdvSeed(t *testing.T) {
	seen := map[uint64]bool{}
	for _, s := range []uint64{0, 1, 42} {
		for e := range 3 {
			for b := range 3 {
				v := advSeed(s, e, b)
				if seen[v] {
					t.Errorf("advSeed(%d, %d, %d) = %#x repeats", s, e, b, v)
				}
				seen[v] = true
			}
		}
	}
	if got, want := advSeed(1, 1, 0), uint64(0x4a71971185bd6fd5); got != want {
		t.Errorf("advSeed(1, 1, 0) = %#x, want %#x", got, want)
	}
}
