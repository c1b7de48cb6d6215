package report_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/report"
	"github.com/marginaudit/marginaudit/internal/npy"
)

// writeGalleryAudit writes an audit of 12 images [1, 6, 6] from an
// --images array, two checkpoints, with saved perturbations; image i has
// L2 margin (i+1)/10 (L∞ a tenth of it), and images 2 and 7 are
// misclassified, image 5's L2 attack failed.
func writeGalleryAudit(t *testing.T) (dir, images string) {
	t.Helper()
	root := t.TempDir()
	const n, d = 12, 36
	x := &npy.Array{Shape: []int{n, 1, 6, 6}, Data: make([]float32, n*d)}
	for i := range x.Data {
		x.Data[i] = float32(i%d) / d
	}
	images = filepath.Join(root, "x.npy")
	if err := npy.WriteFile(images, x); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(root, "audit")
	settings := &auditor.Settings{
		Data: images + "," + filepath.Join(root, "y.npy"), Splits: []auditor.Split{auditor.Test}, N: n, Sample: "first", Seed: 1, Range: [2]float64{0, 1},
		Norms:          []auditor.Norm{auditor.L2, auditor.LInf},
		DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10},
	}
	store, err := auditor.OpenStore(dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	for e := range 2 {
		name := []string{"epoch-000.onnx", "epoch-001.onnx"}[e]
		part := &auditor.Part{Checkpoint: name, Epoch: e}
		for _, norm := range settings.Norms {
			a := auditor.Adversarial{Split: auditor.Test, Norm: norm, Shape: []int64{1, 6, 6}}
			for i := range n {
				label := i % 3
				correct := i != 2 && i != 7
				pred := label
				if !correct {
					pred = (label + 1) % 3
				}
				m := float64(i+1) / 10
				if norm == auditor.LInf {
					m /= 10
				}
				r := auditor.Record{Checkpoint: name, Epoch: e, Split: auditor.Test, Index: i, Label: label, Pred: pred, Correct: correct,
					Norm: norm, Margin: m, MarginRefined: math.NaN(), Iterations: 3, Success: true}
				delta := make([]float32, d)
				for j := range delta {
					delta[j] = float32(m) * float32(j%2*2-1) / 6
				}
				advPred := (pred + 2) % 3
				if i == 5 && norm == auditor.L2 {
					r.Success, r.Margin, advPred = false, math.NaN(), -1
					clear(delta)
				}
				part.Records = append(part.Records, r)
				a.Index, a.AdvPred = append(a.Index, i), append(a.AdvPred, advPred)
				a.Delta = append(a.Delta, delta...)
			}
			part.Adversarial = append(part.Adversarial, a)
		}
		if err := store.Commit(part); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.WriteReport(); err != nil {
		t.Fatal(err)
	}
	return dir, images
}

// The gallery shows the correctly classified images with the smallest and
// largest margins, lists them in summary.json, and draws a figure per split
// and norm.
func TestGallery(t *testing.T) {
	t.Parallel()
	dir, _ := writeGalleryAudit(t)
	out := t.TempDir()
	obs, err := report.Write(context.Background(), []report.Audit{{Label: "run", Dir: dir}}, out, report.Options{Epochs: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	// L2: image 2 is misclassified and 5 failed, so the closest are 0, 1,
	// 3, 4 and the farthest 11, 10, 9, 8; L∞: 0, 1, 3, 4 too.
	want := map[auditor.Norm]map[string][]int{
		auditor.L2:   {"closest": {0, 1, 3, 4}, "farthest": {11, 10, 9, 8}},
		auditor.LInf: {"closest": {0, 1, 3, 4}, "farthest": {11, 10, 9, 8}},
	}
	got := map[auditor.Norm]map[string][]int{auditor.L2: {}, auditor.LInf: {}}
	for _, g := range obs.Gallery {
		if g.Epoch != 1 || g.Split != auditor.Test {
			t.Errorf("gallery image at epoch %d, split %s; want epoch 1, test", g.Epoch, g.Split)
		}
		got[g.Norm][g.End] = append(got[g.Norm][g.End], g.Index)
		// Under the test's perturbation every |δ| is margin/6.
		if math.Abs(float64(g.Scale)-float64(g.Margin)/6) > 1e-6 || g.AdvPred != (g.Label+2)%3 {
			t.Errorf("image %d (%s): scale %v for margin %v, adversarial class %d for label %d", g.Index, g.Norm, g.Scale, g.Margin, g.AdvPred, g.Label)
		}
	}
	for norm, ends := range want {
		for end, idx := range ends {
			if !slices.Equal(got[norm][end], idx) {
				t.Errorf("%s %s: images %v, want %v", norm, end, got[norm][end], idx)
			}
		}
	}
	figs := 0
	for _, f := range obs.Figures {
		if f.Kind == report.FigGallery {
			figs++
			checkPNG(t, filepath.Join(out, f.PNG))
			checkSVG(t, filepath.Join(out, f.SVG))
			if !strings.Contains(f.Caption, "own scale") {
				t.Errorf("%s: the caption does not say how the perturbation is scaled: %s", f.PNG, f.Caption)
			}
		}
	}
	if figs != 2 {
		t.Errorf("%d gallery figures, want 2 (one per norm)", figs)
	}
}

// Without its clean images, or without saved perturbations, a report has
// no gallery and says why.
func TestGallerySkipped(t *testing.T) {
	t.Parallel()
	dir, images := writeGalleryAudit(t)
	if err := os.Remove(images); err != nil {
		t.Fatal(err)
	}
	obs, err := report.Write(context.Background(), []report.Audit{{Label: "run", Dir: dir}}, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Gallery) != 0 || !strings.Contains(strings.Join(obs.Notes, "\n"), "no gallery: cannot read the clean images") {
		t.Errorf("%d gallery images without the clean images; notes %q", len(obs.Gallery), obs.Notes)
	}

	if err := os.RemoveAll(filepath.Join(dir, auditor.AdversarialDir)); err != nil {
		t.Fatal(err)
	}
	obs, err = report.Write(context.Background(), []report.Audit{{Label: "run", Dir: dir}}, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Gallery) != 0 || !strings.Contains(strings.Join(obs.Notes, "\n"), "no saved perturbations") {
		t.Errorf("%d gallery images without perturbations; notes %q", len(obs.Gallery), obs.Notes)
	}
}
