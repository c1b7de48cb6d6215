package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/diff/fd"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/internal/ref"
	"github.com/marginaudit/marginaudit/trainer/model"
)

// tinyModels are small enough for a finite-difference gradient of every
// weight.
var tinyModels = []struct {
	arch    model.Arch
	c, h, w int
}{
	{model.Arch{Kind: model.MLP, Hidden: []int{6, 5}}, 1, 3, 3},
	{model.Arch{Kind: model.CNN, Channels: []int{2, 3}, Hidden: []int{4}}, 2, 5, 4},
	{model.Arch{Kind: model.CNN, Channels: []int{3}, Kernel: 5, Hidden: []int{}}, 1, 6, 6},
}

// openNet opens m's sessions for batches of at most n images on two
// threads, closed when the test ends.
func openNet(t *testing.T, m *model.Model, n int) *net {
	t.Helper()
	nt, err := newNet(m, 2, n, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nt.Close() })
	return nt
}

// randomBatch returns a model with seeded weights (non-zero biases) and n
// random images with random target distributions: one-hot rows and, every
// third row, a soft distribution, which the loss graph also accepts.
func randomBatch(t *testing.T, arch model.Arch, c, h, w, n, k int, seed uint64) (*model.Model, []float32, []float32) {
	t.Helper()
	m, err := model.New(arch, c, h, w, k)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(seed)
	r := rand.New(rand.NewPCG(seed, 99))
	for _, p := range m.Params {
		if p.Bias {
			for j := range p.Data {
				p.Data[j] = float32(0.2 + 0.1*r.NormFloat64()) // mostly positive: fewer dead ReLUs
			}
		}
	}
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(r.Float64())
	}
	target := make([]float32, n*k)
	for i := range n {
		if i%3 == 2 {
			var s float64
			row := make([]float64, k)
			for j := range row {
				row[j] = r.Float64()
				s += row[j]
			}
			for j := range row {
				target[i*k+j] = float32(row[j] / s)
			}
		} else {
			target[i*k+r.IntN(k)] = 1
		}
	}
	return m, x, target
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestGradientsMatchFiniteDifferences compares the training graph's loss and
// gradients, computed by onnxruntime in float32, with a float64 evaluation
// of the same loss in Go (package ref) and its central finite differences
// (gonum diff/fd) with respect to every weight.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	orttest.Require(t)
	// 8 images run in one part; 150 in three (64, 64, 22), whose
	// gradients and losses the step combines.
	for _, n := range []int{8, 150} {
		for _, tc := range tinyModels {
			t.Run(fmt.Sprint(tc.arch.WithDefaults().String(), "/", n, " images"), func(t *testing.T) {
				gradientsMatch(t, tc.arch, tc.c, tc.h, tc.w, n)
			})
		}
	}
}

// gradientsMatch checks one model's training step on n images against the
// float64 reference.
func gradientsMatch(t *testing.T, arch model.Arch, ch, h, wd, n int) {
	t.Helper()
	const k = 3
	m, x, target := randomBatch(t, arch, ch, h, wd, n, k, 21)
	nt := openNet(t, m, n)
	logits := make([]float32, n*k)
	loss, err := nt.step(x, target, logits, n)
	if err != nil {
		t.Fatal(err)
	}

	w := ref.Weights(m)
	x64, t64 := widen(x), widen(target)
	if want := ref.Loss(ref.Logits(m, w, x64, n), t64, n); math.Abs(loss-want) > 1e-5*(1+math.Abs(want)) {
		t.Errorf("loss = %v, reference %v", loss, want)
	}
	nonzero := 0
	for i, p := range m.Params {
		f := func(v []float64) float64 {
			saved := w[i]
			w[i] = v
			defer func() { w[i] = saved }()
			return ref.Loss(ref.Logits(m, w, x64, n), t64, n)
		}
		// Step 1e-6 in float64: truncation error ~1e-12 and rounding
		// ~1e-10, far below the float32 error of onnxruntime's
		// gradient; a ReLU kink within 1e-6 of a probe is unlikely
		// with these random weights.
		want := fd.Gradient(nil, f, append([]float64(nil), w[i]...), &fd.Settings{Formula: fd.Central, Step: 1e-6})
		for j, g := range nt.grads[i] {
			if g != 0 {
				nonzero++
			}
			// float32 sums of at most a few hundred terms of O(1):
			// absolute 2e-5 plus relative 1e-4.
			if d := math.Abs(float64(g) - want[j]); d > 2e-5+1e-4*math.Abs(want[j]) {
				t.Errorf("%s[%d]: gradient %v, finite difference %v", p.Name, j, g, want[j])
			}
		}
	}
	// Dead ReLUs zero some gradients; most must carry a signal for
	// the comparison to mean something.
	if nonzero < m.NumParams()/2 {
		t.Errorf("only %d of %d gradients are non-zero", nonzero, m.NumParams())
	}
	t.Logf("%d of %d gradients non-zero", nonzero, m.NumParams())
}

// TestCheckpointLogits checks that an exported checkpoint, run on its own
// as any consumer would, computes the logits the training graph computed
// with the same weights.
func TestCheckpointLogits(t *testing.T) {
	orttest.Require(t)
	for _, tc := range tinyModels {
		t.Run(tc.arch.WithDefaults().String(), func(t *testing.T) {
			const n, k = 7, 4
			m, x, target := randomBatch(t, tc.arch, tc.c, tc.h, tc.w, n, k, 5)
			nt := openNet(t, m, n)
			want := make([]float32, n*k)
			if _, err := nt.step(x, target, want, n); err != nil {
				t.Fatal(err)
			}
			fwd := make([]float32, n*k)
			if err := nt.forward(x, fwd, n); err != nil {
				t.Fatal(err)
			}

			path := checkpoint.Path(t.TempDir(), 0)
			md := &checkpoint.Metadata{Dataset: "synthetic", Classes: k, InputShape: m.InputShape(), Arch: m.Arch}
			if err := checkpoint.Write(path, m, md); err != nil {
				t.Fatal(err)
			}
			s, err := ort.OpenSession(path, ort.SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			out := []ort.Value{{}}
			if err := s.Run([]ort.Value{ort.NewValue(x, n, int64(tc.c), int64(tc.h), int64(tc.w))}, out); err != nil {
				t.Fatal(err)
			}
			got := out[0].Float32s()
			for i := range want {
				// Same float32 arithmetic; onnxruntime may fuse or pack the
				// constant weights differently, so allow a few ulps.
				tol := 1e-6 * (1 + math.Abs(float64(want[i])))
				if math.Abs(float64(got[i]-want[i])) > tol || math.Abs(float64(fwd[i]-want[i])) > tol {
					t.Errorf("%s: logit %d: checkpoint %v, inference graph %v, training graph %v", filepath.Base(path), i, got[i], fwd[i], want[i])
				}
			}
		})
	}
}
