package auditor

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// withAdversarial adds perturbations to the records of p: image idx's
// perturbation in a norm is idx+1 in every one of its 3 values, zeros
// where the attack failed.
func withAdversarial(p *Part) *Part {
	for _, norm := range []Norm{L2, LInf} {
		a := Adversarial{Split: Test, Norm: norm, Shape: []int64{3}}
		for _, r := range p.Records {
			if r.Norm != norm {
				continue
			}
			a.Index = append(a.Index, r.Index)
			v, pred := float32(r.Index+1), (r.Pred+1)%10
			if !r.Success {
				v, pred = 0, -1
			}
			a.AdvPred = append(a.AdvPred, pred)
			a.Delta = append(a.Delta, v, v, v)
		}
		p.Adversarial = append(p.Adversarial, a)
	}
	return p
}

// The store writes the perturbations with their checkpoint, reads them
// back, replaces them on a recommit, and removes the leftovers of a commit
// that did not finish.
func TestStoreAdversarial(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	p := withAdversarial(makePart(1, 20))
	if err := st.Commit(p); err != nil {
		t.Fatal(err)
	}
	if !st.HasAdversarial(p.Checkpoint) {
		t.Errorf("HasAdversarial(%s) is false after a commit with perturbations", p.Checkpoint)
	}
	for _, want := range p.Adversarial {
		got, err := ReadAdversarial(dir, p.Checkpoint, Test, want.Norm, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Index, want.Index) || !slices.Equal(got.AdvPred, want.AdvPred) || !slices.Equal(got.Delta, want.Delta) {
			t.Errorf("%s: read back %+v, want %+v", want.Norm, got, want)
		}
	}
	// A file readers outside Go see as [N, 3] float32 and [N, 2] int64.
	deltaPath, indexPath := AdversarialFiles(dir, p.Checkpoint, Test, L2, false)
	if a, err := npy.ReadFile(deltaPath); err != nil || !slices.Equal(a.Shape, []int{20, 3}) || a.DType != "float32" {
		t.Errorf("%s: %v, shape %v", deltaPath, err, a)
	}
	if a, err := npy.ReadIntsFile(indexPath); err != nil || !slices.Equal(a.Shape, []int{20, 2}) || a.DType != "int64" {
		t.Errorf("%s: %v, shape %v", indexPath, err, a)
	}

	// A commit interrupted after the perturbations, before the margins
	// part, leaves a folder that the next OpenStore removes.
	orphan := filepath.Join(dir, AdversarialDir, "epoch-002.onnx")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "test-l2.npy"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenStore(dir, testSettings()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the perturbations of an unfinished checkpoint are still there: %v", err)
	}
	if !st.HasAdversarial(p.Checkpoint) {
		t.Errorf("OpenStore removed the perturbations of the finished %s", p.Checkpoint)
	}

	// Committing the checkpoint again without perturbations removes them.
	if err := st.Commit(makePart(1, 20)); err != nil {
		t.Fatal(err)
	}
	if st.HasAdversarial(p.Checkpoint) {
		t.Errorf("a recommit without perturbations left the old ones")
	}
	if _, err := ReadAdversarial(dir, p.Checkpoint, Test, L2, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadAdversarial of a checkpoint without perturbations: %v, want fs.ErrNotExist", err)
	}
}

func TestStoreAdversarialCommitErrors(t *testing.T) {
	st, err := OpenStore(t.TempDir(), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func(p *Part)
		want   string
	}{
		{"order", func(p *Part) { a := &p.Adversarial[0]; a.Index[0], a.Index[1] = a.Index[1], a.Index[0] }, "not those of the records"},
		{"twice", func(p *Part) { p.Adversarial[1].Norm = L2 }, "two sets"},
		{"values", func(p *Part) { p.Adversarial[0].Delta = p.Adversarial[0].Delta[1:] }, "perturbation values"},
		{"predictions", func(p *Part) { p.Adversarial[0].AdvPred = nil }, "adversarial predictions"},
		{"shape", func(p *Part) { p.Adversarial[0].Shape = []int64{0} }, "invalid image shape"},
	} {
		p := withAdversarial(makePart(1, 6))
		tc.break_(p)
		if err := st.Commit(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// Run saves the perturbations DeepFool found and, refining, those of the
// refined points: x + δ is at the recorded margin from x (margin, or
// margin_refined for the refined ones, which FMN moved closer than
// DeepFool's on some images), and a resumed audit says which finished
// checkpoints it cannot add them to.
func TestRunSavesAdversarial(t *testing.T) {
	cfg := runFixture(t, "epoch-000.onnx")
	cfg.SaveAdversarial = true
	if _, err := Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := readRecordsFile(t, filepath.Join(cfg.Out, MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	closer := 0 // images whose refined point is closer than DeepFool's
	for _, refined := range []bool{false, true} {
		for _, norm := range cfg.Settings.Norms {
			a, err := ReadAdversarial(cfg.Out, "epoch-000.onnx", Test, norm, refined)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Shape, []int64{1, 28, 28}) || !slices.Equal(a.Index, []int{10, 11, 12, 13}) || a.Refined != refined {
				t.Errorf("%s: shape %v, images %v, refined %t; want [1 28 28], [10 11 12 13], %t", a, a.Shape, a.Index, a.Refined, refined)
			}
			d := 28 * 28
			i := 0
			for _, r := range recs {
				if r.Norm != norm {
					continue
				}
				delta := a.Delta[i*d : (i+1)*d]
				margin, ok := r.Margin, r.Success
				if refined {
					margin, ok = r.MarginRefined, r.HasRefinedMargin()
				}
				if !ok {
					if a.AdvPred[i] != -1 || slices.ContainsFunc(delta, func(v float32) bool { return v != 0 }) {
						t.Errorf("%s image %d has no margin but has prediction %d and a perturbation", a, r.Index, a.AdvPred[i])
					}
					i++
					continue
				}
				if a.AdvPred[i] == r.Pred || a.AdvPred[i] < 0 {
					t.Errorf("%s image %d: adversarial prediction %d, clean %d", a, r.Index, a.AdvPred[i], r.Pred)
				}
				// float32 perturbation, float64 norm: agree to float32 rounding.
				if got := vecNorm(delta, norm); math.Abs(got-margin) > 1e-5*math.Max(1, margin) {
					t.Errorf("%s image %d: ‖δ‖ = %v, margin %v", a, r.Index, got, margin)
				}
				if refined && r.Success && margin < 0.99*r.Margin {
					closer++
				}
				i++
			}
		}
	}
	if closer == 0 {
		t.Error("FMN moved no image 1% closer than DeepFool: the test does not tell the refined points from DeepFool's")
	}

	// Resumed with a new checkpoint, once without saving and once with:
	// the second run warns for the checkpoint finished without them.
	model, err := os.ReadFile(filepath.Join(cfg.Checkpoints[0], "epoch-000.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Checkpoints[0], "epoch-001.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.SaveAdversarial = false
	if _, err := Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.SaveAdversarial = true
	p := &recordingProgress{}
	if _, err := Run(context.Background(), cfg, p); err != nil {
		t.Fatal(err)
	}
	if len(p.warnings) != 1 || !strings.Contains(p.warnings[0], "epoch-001.onnx was audited without saving") {
		t.Errorf("warnings %q, want one for epoch-001.onnx", p.warnings)
	}
	settings, err := os.ReadFile(filepath.Join(cfg.Out, SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(settings)), "adversarial") {
		t.Errorf("settings.json mentions the saved perturbations, which change no result:\n%s", settings)
	}
}

func vecNorm(v []float32, norm Norm) float64 {
	s := 0.0
	for _, x := range v {
		if norm == LInf {
			s = math.Max(s, math.Abs(float64(x)))
		} else {
			s += float64(x) * float64(x)
		}
	}
	if norm == LInf {
		return s
	}
	return math.Sqrt(s)
}

// Images from a data set (NCHW) audited by an NHWC model are transposed
// for it; the saved perturbations are transposed back, so that they equal
// those of the same model taking NCHW images.
func TestRunSavesAdversarialInImageLayout(t *testing.T) {
	orttest.Require(t)
	x, err := npy.ReadFile("../testdata/models/resnet_small.x.npy")
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgrad.Load("../testdata/models/resnet_small.onnx")
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string]*Adversarial{}
	for name, model := range map[string]*onnxpb.ModelProto{"nchw": m, "nhwc": testmodels.NHWC(m)} {
		dir := t.TempDir()
		if err := onnxgrad.Save(filepath.Join(dir, "epoch-001.onnx"), model); err != nil {
			t.Fatal(err)
		}
		im := &Images{X: x.Data, Labels: []int{0, 1, 2, 3}, Index: []int{0, 1, 2, 3}, Shape: []int64{3, 16, 16}, Layout: attack.NCHW}
		cfg := Config{Checkpoints: []string{dir}, Out: filepath.Join(t.TempDir(), "audit"), Threads: 1, SaveAdversarial: true,
			Settings: Settings{Data: "fixture", Splits: []Split{Test}, N: 4, Sample: "first", Seed: 1, Norms: []Norm{L2},
				DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 2}},
			Data: map[Split]*Images{Test: im}}
		if _, err := Run(context.Background(), cfg, nil); err != nil {
			t.Fatal(err)
		}
		if saved[name], err = ReadAdversarial(cfg.Out, "epoch-001.onnx", Test, L2, false); err != nil {
			t.Fatal(err)
		}
	}
	a, b := saved["nchw"], saved["nhwc"]
	if !slices.Equal(a.Shape, []int64{3, 16, 16}) || !slices.Equal(b.Shape, a.Shape) || !slices.Equal(a.AdvPred, b.AdvPred) {
		t.Fatalf("NCHW model: shape %v, classes %v; NHWC model: %v, %v", a.Shape, a.AdvPred, b.Shape, b.AdvPred)
	}
	// The same attack on the same numbers in another order: equal up to
	// float32 rounding of differently ordered sums.
	for i := range a.Delta {
		if math.Abs(float64(a.Delta[i]-b.Delta[i])) > 1e-4 {
			t.Fatalf("perturbation value %d: %v for the NCHW model, %v for the NHWC one", i, a.Delta[i], b.Delta[i])
		}
	}
}
