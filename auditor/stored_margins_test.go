package auditor

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// storedMarginsImages is how many images TestStoredMargins audits: enough
// that most DeepFool code paths (several steps, both norms, correct and
// misclassified images) are taken, few enough for a quick test.
const storedMarginsImages = 32

// storedMarginsTol is the relative tolerance on a margin against the stored
// one. Speed work on DeepFool (other kernels, other thread counts, another
// order of the arithmetic) may change float32 rounding, not the margins:
// 1e-5 is a few float32 ulps times the ≈ 5 steps of an attack.
const storedMarginsTol = 1e-5

// storedModel is a fixture whose margins TestStoredMargins guards: its
// file in testdata/models, its image shape [C, H, W], and the stored
// margins.csv in testdata.
type storedModel struct {
	name    string
	c, h, w int
	stored  string
}

// storedModels are the CNN fixture (3×3 Convs, MaxPools: the Jacobian
// graph of most trainer models) and a narrow torchvision ResNet-18 (strided
// Convs, whose input gradients take the stride-phase form where it pays,
// residual Adds, an overlapping MaxPool), both with random weights.
var storedModels = []storedModel{
	{"cnn", 1, 28, 28, "testdata/stored_margins.csv"},
	{"resnet18_narrow", 3, 32, 32, "testdata/stored_margins_resnet18_narrow.csv"},
}

// storedMarginsConfig audits model m on storedMarginsImages images drawn
// from a seeded generator, in L2 and L∞, with one onnxruntime thread.
func storedMarginsConfig(t *testing.T, m storedModel) Config {
	t.Helper()
	orttest.Require(t)
	dir := t.TempDir()
	model := mustRead(t, "../testdata/models/"+m.name+".onnx")
	if err := os.WriteFile(filepath.Join(dir, "epoch-000.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 1)) // issue 13
	plane := m.h * m.w
	size := m.c * plane
	im := &Images{X: make([]float32, storedMarginsImages*size), Shape: []int64{int64(m.c), int64(m.h), int64(m.w)}, Name: "stored-margins"}
	for i := range storedMarginsImages {
		// A smooth blob on a noisy background, in every channel. The
		// fixtures' random weights put most images in one class; the
		// random labels make both correct and misclassified images, and
		// the images' margins take several DeepFool steps.
		cx, cy, r := 4+rng.Float64()*float64(m.w-8), 4+rng.Float64()*float64(m.h-8), 3+rng.Float64()*6
		for p := range size {
			dx, dy := float64(p%m.w)-cx, float64(p%plane/m.w)-cy
			v := math.Exp(-(dx*dx+dy*dy)/(2*r*r)) + 0.2*rng.Float64()
			im.X[i*size+p] = float32(min(v, 1))
		}
		im.Labels = append(im.Labels, rng.IntN(10))
		im.Index = append(im.Index, i)
	}
	return Config{
		Checkpoints: []string{dir},
		Out:         filepath.Join(t.TempDir(), "audit"),
		Settings: Settings{Data: "stored-margins", Splits: []Split{Test}, N: storedMarginsImages, Sample: "first", Seed: 1,
			Norms: []Norm{L2, LInf}, DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 2}},
		Data:    map[Split]*Images{Test: im},
		Threads: 1,
	}
}

// TestStoredMargins guards DeepFool's results while its speed changes: the
// audit of storedMarginsConfig must give every image the margin of the
// model's stored margins.csv to storedMarginsTol relative, and the same
// prediction, steps, retries and success. -update rewrites the files from
// today's code.
func TestStoredMargins(t *testing.T) {
	for _, m := range storedModels {
		t.Run(m.name, func(t *testing.T) {
			cfg := storedMarginsConfig(t, m)
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			gotPath := filepath.Join(cfg.Out, MarginsFile)
			if *update {
				if err := os.WriteFile(m.stored, mustRead(t, gotPath), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := readRecordsFile(t, m.stored)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			got, err := readRecordsFile(t, gotPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d records, %s has %d", len(got), m.stored, len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Split != w.Split || g.Index != w.Index || g.Norm != w.Norm || g.Label != w.Label || g.Pred != w.Pred ||
					g.Iterations != w.Iterations || g.Retries != w.Retries || g.Success != w.Success {
					t.Errorf("record %d: got %+v, stored %+v", i, g, w)
					continue
				}
				if d := math.Abs(g.Margin - w.Margin); !(d <= storedMarginsTol*math.Abs(w.Margin)) && !(math.IsNaN(g.Margin) && math.IsNaN(w.Margin)) {
					t.Errorf("image %d %s: margin %v, stored %v (relative difference %.2g > %g)", w.Index, w.Norm, g.Margin, w.Margin, d/math.Abs(w.Margin), storedMarginsTol)
				}
			}
		})
	}
}
