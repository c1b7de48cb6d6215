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
// misclassified, image 5's L2 attack failed. Each perturbation's values
// are ±margin/6 (its L2 norm is the margin) and lead to class pred+2
// (mod 3). With refined, the audit refined: each refined margin is half
// DeepFool's, image 5's in L2 (which DeepFool failed on) 0.01, and the
// refined perturbations, saved beside DeepFool's, lead to class pred+1.
func writeGalleryAudit(t *testing.T, refined bool) (dir, images string) {
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
	if refined {
		settings.RefineParams = attack.DefaultRefineParams()
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
			ra := auditor.Adversarial{Split: auditor.Test, Norm: norm, Refined: true, Shape: []int64{1, 6, 6}}
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
				perturbation := func(m float64) []float32 {
					delta := make([]float32, d)
					for j := range delta {
						delta[j] = float32(m) * float32(j%2*2-1) / 6
					}
					return delta
				}
				delta, advPred := perturbation(m), (pred+2)%3
				r.MarginRefined = m / 2
				if i == 5 && norm == auditor.L2 {
					r.Success, r.Margin, advPred = false, math.NaN(), -1
					r.MarginRefined = 0.01
					clear(delta)
				}
				part.Records = append(part.Records, r)
				a.Index, a.AdvPred = append(a.Index, i), append(a.AdvPred, advPred)
				a.Delta = append(a.Delta, delta...)
				ra.Index, ra.AdvPred = append(ra.Index, i), append(ra.AdvPred, (pred+1)%3)
				ra.Delta = append(ra.Delta, perturbation(r.MarginRefined)...)
			}
			part.Adversarial = append(part.Adversarial, a)
			if refined {
				part.Adversarial = append(part.Adversarial, ra)
			}
		}
		if !refined {
			for i := range part.Records {
				part.Records[i].MarginRefined = math.NaN()
			}
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
	dir, _ := writeGalleryAudit(t, false)
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

// A report of refined margins draws the refined points, each with the
// refined margin that is its perturbation's norm, image 5 included (FMN
// flipped it where DeepFool failed); an audit refined before the refined
// points were saved shows DeepFool's points with DeepFool's margins, and
// says so.
func TestGalleryRefined(t *testing.T) {
	t.Parallel()
	dir, _ := writeGalleryAudit(t, true)
	for _, older := range []bool{false, true} {
		if older {
			files, err := filepath.Glob(filepath.Join(dir, auditor.AdversarialDir, "*", "*-refined*.npy"))
			if err != nil || len(files) != 8 {
				t.Fatalf("refined perturbation files %v (%v), want 2 checkpoints × 2 norms × 2 files", files, err)
			}
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		obs, err := report.Write(context.Background(), []report.Audit{{Label: "run", Dir: dir}}, t.TempDir(), report.Options{Epochs: []int{1}, Refined: true})
		if err != nil {
			t.Fatal(err)
		}
		// Refined, image 5 has the smallest L2 margin; DeepFool failed on it.
		want := map[auditor.Norm][]int{auditor.L2: {5, 0, 1, 3, 11, 10, 9, 8}, auditor.LInf: {0, 1, 3, 4, 11, 10, 9, 8}}
		advPred := 1
		if older {
			want[auditor.L2], advPred = want[auditor.LInf], 2
		}
		got := map[auditor.Norm][]int{}
		for _, g := range obs.Gallery {
			got[g.Norm] = append(got[g.Norm], g.Index)
			m := float64(g.Index+1) / 10
			if g.Norm == auditor.LInf {
				m /= 10
			}
			if !older {
				m /= 2
				if g.Index == 5 && g.Norm == auditor.L2 {
					m = 0.01
				}
			}
			// The norm of the perturbation drawn (every |δ| is margin/6 in
			// the fixture) is the margin shown.
			if g.Refined == older || math.Abs(float64(g.Margin)-m) > 1e-12 || math.Abs(float64(g.Scale)-m/6) > 1e-6 || g.AdvPred != (g.Label+advPred)%3 {
				t.Errorf("older %t: image %d (%s): refined %t, margin %v, scale %v, class %d for label %d; want margin %v, scale %v, class %d",
					older, g.Index, g.Norm, g.Refined, g.Margin, g.Scale, g.AdvPred, g.Label, m, m/6, (g.Label+advPred)%3)
			}
		}
		for norm, idx := range want {
			if !slices.Equal(got[norm], idx) {
				t.Errorf("older %t: %s images %v, want %v", older, norm, got[norm], idx)
			}
		}
		notes := strings.Join(obs.Notes, "\n")
		if said := strings.Contains(notes, "saved DeepFool's perturbations only"); said != older {
			t.Errorf("older %t: notes %q", older, obs.Notes)
		}
		for _, f := range obs.Figures {
			if f.Kind == report.FigGallery && strings.Contains(f.Caption, "that FMN refined") == older {
				t.Errorf("older %t: caption %s", older, f.Caption)
			}
		}
	}
}

// Without its clean images, or without saved perturbations, a report has
// no gallery and says why.
func TestGallerySkipped(t *testing.T) {
	t.Parallel()
	dir, images := writeGalleryAudit(t, false)
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
