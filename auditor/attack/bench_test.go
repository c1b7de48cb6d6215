package attack

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/internal/npy"
)

var benchThreads = flag.Int("bench-threads", 2, "onnxruntime threads in the benchmarks")

var benchProfile = flag.String("bench-profile", "", "BenchmarkDeepFool writes onnxruntime's per-node profiles to files named `PREFIX`_*.json (see bench/deepfool/README.md)")

var benchDump = flag.String("bench-dump", "", "TestDumpBenchImages writes the benchmark's images and DeepFool results to `DIR`")

// benchImages returns the n images BenchmarkDeepFool attacks on the fixture
// name: its four, then noisy copies (Gaussian σ = 0.05, seed 1, clipped to
// [0, 1]).
func benchImages(c *Classifier, xa *npy.Array, n int) []float32 {
	return tile(xa.Data, c.SampleSize(), n, 0.05, 1)
}

// TestDumpBenchImages, with -bench-dump DIR, writes for the MLP and CNN
// fixtures the 500 images of BenchmarkDeepFool to DIR/NAME.x.npy, [500, 1,
// 28, 28], and what DeepFool (default options) finds for them to
// DIR/NAME.NORM.npy, [500, 3]: margin (+Inf on failure), steps, retries,
// and the images' predicted classes to DIR/NAME.labels.npy, int64 [500].
// bench/deepfool/deepfool_torch.py reads them, to attack the same images in
// PyTorch and compare the margins image by image; bench/run audits the
// images and labels with `marginaudit audit`.
func TestDumpBenchImages(t *testing.T) {
	if *benchDump == "" {
		t.Skip("no -bench-dump DIR")
	}
	if err := os.MkdirAll(*benchDump, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for _, name := range []string{"mlp", "cnn"} {
		m, xa := fixture(t, name)
		c := newClassifier(t, m, Options{Name: name, Threads: 2})
		x := benchImages(c, xa, n)
		shape := []int{n}
		for _, s := range c.InputShape() {
			shape = append(shape, int(s))
		}
		if err := npy.WriteFile(filepath.Join(*benchDump, name+".x.npy"), &npy.Array{Shape: shape, Data: x}); err != nil {
			t.Fatal(err)
		}
		for _, norm := range []Norm{L2, LInf} {
			res, err := DeepFool(context.Background(), c, x, nil, DefaultDeepFoolOptions(norm))
			if err != nil {
				t.Fatal(err)
			}
			if norm == L2 {
				labels := &npy.IntArray{Shape: []int{n}, Data: make([]int, n), DType: "int64"}
				for i, r := range res {
					labels.Data[i] = r.Pred
				}
				if err := writeInts(filepath.Join(*benchDump, name+".labels.npy"), labels); err != nil {
					t.Fatal(err)
				}
			}
			out := &npy.Array{Shape: []int{n, 3}, Data: make([]float32, 3*n)}
			for i, r := range res {
				out.Data[3*i], out.Data[3*i+1], out.Data[3*i+2] = float32(r.Margin), float32(r.Iterations), float32(r.Retries)
			}
			if err := npy.WriteFile(filepath.Join(*benchDump, name+"."+norm.String()+".npy"), out); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeInts writes a to the .npy file path.
func writeInts(path string, a *npy.IntArray) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := npy.WriteInts(f, a); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchmarkDeepFool attacks 500 images (the fixture's four, then noisy
// copies: Gaussian σ = 0.05, seed 1, clipped to [0, 1]) with the default
// options (all 10 classes, batches of DefaultDeepFoolBatch) on 2 threads (-bench-threads), and reports
// images/s, the mean margin and the Jacobian runs' share of the steps.
// bench/deepfool/deepfool_torch.py runs the same attack in PyTorch.
func BenchmarkDeepFool(b *testing.B) {
	const n = 500
	for _, name := range []string{"mlp", "cnn"} {
		for _, norm := range []Norm{L2, LInf} {
			b.Run(name+"/"+norm.String(), func(b *testing.B) {
				m, xa := fixture(b, name)
				c := newClassifier(b, m, Options{Name: name, Threads: *benchThreads, ProfilePrefix: *benchProfile})
				x := benchImages(c, xa, n)
				opt := DefaultDeepFoolOptions(norm)
				run := func() []DeepFoolResult {
					res, err := DeepFool(context.Background(), c, x, nil, opt)
					if err != nil {
						b.Fatal(err)
					}
					return res
				}
				res := run() // builds the Jacobian graph, warms the arenas
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					run()
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
				var mean, steps float64
				for _, r := range res {
					mean += r.Margin / n
					steps += float64(r.Iterations) / n
				}
				b.ReportMetric(mean, "margin")
				b.ReportMetric(steps, "steps/image")
			})
		}
	}
}

// BenchmarkPGD runs 10 steps of L∞ PGD on a batch of 128 CNN images, as
// adversarial training does for each batch.
func BenchmarkPGD(b *testing.B) {
	const n = 128
	m, xa := fixture(b, "cnn")
	c := newClassifier(b, m, Options{Threads: *benchThreads})
	x := tile(xa.Data, c.SampleSize(), n, 0.05, 1)
	labels := make([]int, n)
	adv := make([]float32, len(x))
	p, err := NewPGD(c, PGDOptions{Norm: LInf, Eps: 0.1, PGDParams: PGDParams{Step: 0.025, Steps: 10, RandomStart: true}})
	if err != nil {
		b.Fatal(err)
	}
	attack := func() {
		if err := p.Attack(context.Background(), adv, x, labels, nil); err != nil {
			b.Fatal(err)
		}
	}
	attack()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		attack()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
