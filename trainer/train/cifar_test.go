package train_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

// cifarLike returns n 3×32×32 images of the 10 classes: class c is a bright
// 8×8 square in channel c%3, at one of four places (c/3), over uniform noise in
// [0, 0.5].
func cifarLike(n int, seed uint64) *dataset.Dataset {
	r := rand.New(rand.NewPCG(seed, 2))
	const c, h, w = 3, 32, 32
	d := &dataset.Dataset{N: n, C: c, H: h, W: w, Classes: 10, Images: make([]float32, n*c*h*w), Labels: make([]int, n)}
	for i := range n {
		y := r.IntN(10)
		d.Labels[i] = y
		img := d.Images[i*c*h*w : (i+1)*c*h*w]
		for j := range img {
			img[j] = float32(0.5 * r.Float64())
		}
		ch, r0, c0 := y%3, 4+(y/3%2)*16, 4+(y/6)*16
		for yy := r0; yy < r0+8; yy++ {
			for xx := c0; xx < c0+8; xx++ {
				img[ch*h*w+yy*w+xx] = float32(0.8 + 0.2*r.Float64())
			}
		}
	}
	return d
}

// TestRunCIFAR10 trains the study's CNN (the default cnn architecture) for one
// epoch on CIFAR-10 as Run loads it by name: small batches generated in the
// real binary format (data_batch_1.bin … data_batch_5.bin of 64 images each,
// test_batch.bin of 100) in a temporary DataDir. It checks the checkpoints'
// metadata and that a checkpoint, opened on its own, takes [N, 3, 32, 32]
// images, returns [N, 10] logits, and reproduces the recorded test accuracy.
func TestRunCIFAR10(t *testing.T) {
	orttest.Require(t)
	const perBatch, nTest = 64, 100
	dir := t.TempDir()
	write := func(name string, d *dataset.Dataset) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := dataset.WriteCIFAR(f, d); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		write(fmt.Sprintf("data_batch_%d.bin", i), cifarLike(perBatch, uint64(i)))
	}
	write("test_batch.bin", cifarLike(nTest, 9))

	cfg := train.Config{
		Dataset: "cifar10", DataDir: dir, Arch: model.Arch{Kind: model.CNN},
		Epochs: 1, BatchSize: 32, Seed: 3, Optim: optim.Config{Name: optim.Adam, LR: 1e-3},
		Out: t.TempDir(), Threads: 2,
	}
	if err := train.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := checkpoint.Epochs(cfg.Out); err != nil || !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("epochs %v, %v; want [0 1]", got, err)
	}
	test, err := dataset.Load("cifar10", "test", dir)
	if err != nil {
		t.Fatal(err)
	}
	for e := range 2 {
		path := checkpoint.Path(cfg.Out, e)
		m, md, err := checkpoint.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if md.Dataset != "cifar10" || md.Classes != 10 || !slices.Equal(md.InputShape, []int{3, 32, 32}) ||
			md.InputRange != [2]float64{0, 1} || md.Epoch != e || md.TrainImages != 5*perBatch || md.TestImages != nTest ||
			md.Arch.String() != (model.Arch{Kind: model.CNN}).WithDefaults().String() {
			t.Errorf("%s: metadata %+v", filepath.Base(path), md)
		}
		if m.C != 3 || m.H != 32 || m.W != 32 || m.Classes != 10 {
			t.Errorf("%s: model for %d×%d×%d images, %d classes", filepath.Base(path), m.C, m.H, m.W, m.Classes)
		}

		s, err := ort.OpenSession(path, ort.SessionOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		in, out := s.Inputs(), s.Outputs()
		if len(in) != 1 || in[0].Name != model.InputName || !slices.Equal(in[0].Shape, []int64{-1, 3, 32, 32}) ||
			len(out) != 1 || out[0].Name != model.OutputName || !slices.Equal(out[0].Shape, []int64{-1, 10}) {
			t.Errorf("%s: inputs %v, outputs %v; want input [N 3 32 32], logits [N 10]", filepath.Base(path), in, out)
		}
		res := []ort.Value{{}}
		err = s.Run([]ort.Value{ort.NewValue(test.Images, nTest, 3, 32, 32)}, res)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		logits := res[0].Float32s()
		if len(logits) != nTest*10 {
			t.Fatalf("%s: %d logits for %d images", filepath.Base(path), len(logits), nTest)
		}
		correct := 0
		for i, y := range test.Labels {
			if slices.Index(logits[i*10:(i+1)*10], slices.Max(logits[i*10:(i+1)*10])) == y {
				correct++
			}
		}
		// The checkpoint holds the weights as initializers, the evaluation
		// fed them as inputs: onnxruntime may round a logit differently, which
		// could flip one near-tie.
		if got := float64(correct) / nTest; math.Abs(got-md.TestAccuracy) > 1.5/nTest {
			t.Errorf("%s: test accuracy %v from the checkpoint's logits, %v recorded", filepath.Base(path), got, md.TestAccuracy)
		}
	}
}
