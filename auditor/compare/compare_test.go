package compare_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/compare"
	"github.com/marginaudit/marginaudit/auditor/compare/comparetest"
)

// margins gives image i the margin 0.5 + i/100 (L2) or a tenth of it
// (L∞), scaled by f.
func margins(f float64) func(int, auditor.Norm) float64 {
	return func(i int, n auditor.Norm) float64 {
		v := f * (0.5 + float64(i)/100)
		if n == auditor.LInf {
			v /= 10
		}
		return v
	}
}

func allCorrect(int) bool { return true }

func model(name string, epoch int, f float64, robust int) comparetest.Model {
	return comparetest.Model{Checkpoint: name, Epoch: epoch, Margin: margins(f), Correct: allCorrect, Robust: robust}
}

func load(t *testing.T, dir, name string) *compare.Audit {
	t.Helper()
	f, err := compare.ReadFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Model(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCompareSameModel(t *testing.T) {
	dir := t.TempDir()
	comparetest.Write(t, dir, comparetest.Settings(40), model("a.onnx", 0, 1, 30))
	a := load(t, dir, "")
	res, err := compare.Compare(a, a, compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Margins) != 2 || len(res.Accuracy) != 1 || len(res.Robust) != 1 {
		t.Fatalf("got %d margin rows, %d accuracy, %d robust; want 2, 1, 1", len(res.Margins), len(res.Accuracy), len(res.Robust))
	}
	for _, m := range res.Margins {
		if m.Pairs != 40 || m.Change != 0 || m.Dropped != 0 || m.Wilcoxon.P != 1 || m.Wilcoxon.Zeros != 40 {
			t.Errorf("%s %s: %+v, want 40 pairs without change", m.Split, m.Norm, m)
		}
	}
	gates, err := compare.ParseGates("mean_margin_drop>5%,robust_accuracy_drop>0.02,accuracy_drop>0,p<0.01,dropped_share>0.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.Check(gates) {
		if g.Status != compare.Pass {
			t.Errorf("gate %s: %s (%s), want pass", g.Gate, g.Status, g.Message)
		}
	}
}

func TestCompareWeakerModel(t *testing.T) {
	dir := t.TempDir()
	// One folder, two models: the candidate's margins are 80% of the
	// baseline's, and 10 of 40 images lose their robustness.
	comparetest.Write(t, dir, comparetest.Settings(40), model("base.onnx", 0, 1, 30), model("cand.onnx", 1, 0.8, 20))
	res, err := compare.Compare(load(t, dir, "base"), load(t, dir, "cand.onnx"), compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Margins {
		if m.Dropped != 40 || math.Abs(float64(m.RelativeChange)+0.2) > 1e-12 || !(m.ChangeHi < 0) {
			t.Errorf("%s %s: %+v, want every margin 20%% lower with an interval below 0", m.Split, m.Norm, m)
		}
		// Every difference is negative and their sizes are distinct: W⁺ = 0,
		// n = 40 ≤ 50, so the exact p is 2/2⁴⁰.
		if m.Wilcoxon.Method != compare.Exact || float64(m.Wilcoxon.P) != 2/math.Ldexp(1, 40) {
			t.Errorf("%s %s: Wilcoxon %+v, want exact p = 2⁻³⁹", m.Split, m.Norm, m.Wilcoxon)
		}
	}
	// Images 20…29 lose their robustness: McNemar's exact p = 2·2⁻¹⁰.
	if r := res.Robust[0]; math.Abs(float64(r.Change)+0.25) > 1e-12 || r.McNemar == nil ||
		r.McNemar.Lost != 10 || r.McNemar.Gained != 0 || float64(r.McNemar.P) != 2.0/1024 {
		t.Errorf("robust accuracy %+v (McNemar %+v), want change −0.25, 10 images lost, p = 2/1024", r, r.McNemar)
	}
	// Without robust.csv (audits made before it existed) there is no
	// paired test of robustness, only the change.
	if err := os.Remove(filepath.Join(dir, auditor.RobustFile)); err != nil {
		t.Fatal(err)
	}
	old, err := compare.Compare(load(t, dir, "base"), load(t, dir, "cand.onnx"), compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := old.Robust[0]; r.Change != res.Robust[0].Change || r.McNemar != nil {
		t.Errorf("without robust.csv: %+v, want the change without McNemar", r)
	}
	gates, err := compare.ParseGates("mean_margin_drop>5%, robust_accuracy_drop>0.3, margin_p<0.01, robust_accuracy_p<0.01")
	if err != nil {
		t.Fatal(err)
	}
	got := res.Check(gates)
	want := []string{compare.Fail, compare.Pass, compare.Fail, compare.Fail}
	for i, g := range got {
		if g.Status != want[i] {
			t.Errorf("gate %s: %s (%s), want %s", g.Gate, g.Status, g.Message, want[i])
		}
	}
	if v := float64(got[0].Value); math.Abs(v-0.2) > 1e-12 || got[0].Where != "test l2" {
		t.Errorf("gate %s measured %v at %q, want 0.2 at test l2", got[0].Gate, v, got[0].Where)
	}
}

func TestCompareFailedAttacks(t *testing.T) {
	dir := t.TempDir()
	fail := func(skip map[int]bool, f float64) func(int, auditor.Norm) float64 {
		return func(i int, n auditor.Norm) float64 {
			if skip[i] {
				return math.NaN()
			}
			return margins(f)(i, n)
		}
	}
	comparetest.Write(t, dir, comparetest.Settings(10),
		comparetest.Model{Checkpoint: "b.onnx", Epoch: 0, Margin: fail(map[int]bool{1: true, 2: true}, 1), Correct: allCorrect},
		comparetest.Model{Checkpoint: "c.onnx", Epoch: 1, Margin: fail(map[int]bool{2: true, 3: true, 4: true}, 2), Correct: func(i int) bool { return i != 0 }})
	res, err := compare.Compare(load(t, dir, "b"), load(t, dir, "c"), compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Margins[0]
	if m.Pairs != 6 || m.BaselineFailed != 1 || m.CandidateFailed != 2 || m.BothFailed != 1 {
		t.Errorf("%+v: want 6 pairs, failures 1 baseline, 2 candidate, 1 both", m)
	}
	// The pairs are images 0, 5…9: baseline mean 0.5 + 35/600.
	if want := 0.5 + 35.0/600; math.Abs(float64(m.BaselineMean)-want) > 1e-12 || math.Abs(float64(m.CandidateMean)-2*want) > 1e-12 {
		t.Errorf("means %v, %v; want %v, %v", m.BaselineMean, m.CandidateMean, want, 2*want)
	}
	if a := res.Accuracy[0]; a.McNemar.Lost != 1 || a.McNemar.Gained != 0 || math.Abs(float64(a.Change)+0.1) > 1e-12 {
		t.Errorf("accuracy %+v: want one image lost", a)
	}
}

// With refined margins every image's refined margin is its margin,
// whether DeepFool failed on it or not, and only a censored image (no
// attack flipped it: margin_refined is the radius tried, no margin) counts
// as failed.
func TestCompareRefinedMargins(t *testing.T) {
	dir := t.TempDir()
	s := comparetest.Settings(10)
	s.RefineParams = attack.DefaultRefineParams()
	// Refined margins are 90% of DeepFool's, and where DeepFool failed
	// (margin NaN) FMN's search flipped the image at 1.5 (L2) or 0.15 (L∞),
	// except on the censored images.
	model := func(name string, epoch int, f float64, failed, censored map[int]bool) comparetest.Model {
		return comparetest.Model{Checkpoint: name, Epoch: epoch, Correct: allCorrect,
			Margin: func(i int, n auditor.Norm) float64 {
				if failed[i] {
					return math.NaN()
				}
				return margins(f)(i, n)
			},
			Refined: func(i int, n auditor.Norm) (float64, bool) {
				m := 0.9 * margins(f)(i, n)
				if failed[i] {
					m = margins(3)(0, n)
				}
				return m, censored[i]
			}}
	}
	comparetest.Write(t, dir, s,
		// Baseline: DeepFool failed on images 1 and 2; image 2 is censored.
		model("b.onnx", 0, 1, map[int]bool{1: true, 2: true}, map[int]bool{2: true}),
		// Candidate: DeepFool failed on image 3, which FMN flipped; image 4
		// is censored although DeepFool's point flipped (it did not flip
		// when run again), so it has DeepFool's margin but no refined one.
		model("c.onnx", 1, 2, map[int]bool{3: true}, map[int]bool{4: true}))
	res, err := compare.Compare(load(t, dir, "b"), load(t, dir, "c"), compare.Options{Refined: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Margins {
		// Pairs: images 0, 1, 3, 5…9; image 2 is censored on the baseline,
		// image 4 on the candidate.
		if m.Pairs != 8 || m.BaselineFailed != 1 || m.CandidateFailed != 1 || m.BothFailed != 0 {
			t.Errorf("%s: %+v: want 8 pairs, one image censored on each model", m.Norm, m)
		}
		var b, c float64
		for _, i := range []int{0, 1, 3, 5, 6, 7, 8, 9} {
			b += 0.9 * margins(1)(i, m.Norm)
			c += 0.9 * margins(2)(i, m.Norm)
		}
		b += margins(3)(0, m.Norm) - 0.9*margins(1)(1, m.Norm) // image 1: FMN's search on the baseline
		c += margins(3)(0, m.Norm) - 0.9*margins(2)(3, m.Norm) // image 3: on the candidate
		if want := b / 8; math.Abs(float64(m.BaselineMean)-want) > 1e-12 {
			t.Errorf("%s: baseline mean %v, want %v", m.Norm, m.BaselineMean, want)
		}
		if want := c / 8; math.Abs(float64(m.CandidateMean)-want) > 1e-12 {
			t.Errorf("%s: candidate mean %v, want %v", m.Norm, m.CandidateMean, want)
		}
	}
	var text strings.Builder
	if err := compare.WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "DeepFool's failures included (failed: images censored") {
		t.Errorf("the table does not say what refined failures are:\n%s", text.String())
	}
	// Unrefined, DeepFool's failures are the failures and image 4's
	// DeepFool margin counts.
	res, err = compare.Compare(load(t, dir, "b"), load(t, dir, "c"), compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Margins[0]; m.Pairs != 7 || m.BaselineFailed != 2 || m.CandidateFailed != 1 {
		t.Errorf("unrefined: %+v: want 7 pairs, DeepFool failed on 2 baseline and 1 candidate images", m)
	}
	// Audits without refinement have no refined margins to compare.
	plain := t.TempDir()
	comparetest.Write(t, plain, comparetest.Settings(10), comparetest.Model{Checkpoint: "a.onnx", Margin: margins(1), Correct: allCorrect})
	if _, err := compare.Compare(load(t, plain, ""), load(t, plain, ""), compare.Options{Refined: true}); err == nil || !strings.Contains(err.Error(), "has no refined margin") {
		t.Errorf("refined comparison of unrefined audits: %v, want an error saying there is no refined margin", err)
	}
}

func TestCompareRefusesMismatches(t *testing.T) {
	base, other, fewer := t.TempDir(), t.TempDir(), t.TempDir()
	comparetest.Write(t, base, comparetest.Settings(10), model("a.onnx", 0, 1, 5))
	s := comparetest.Settings(10)
	s.MaxIter = 20
	comparetest.Write(t, other, s, model("a.onnx", 0, 1, 5))
	comparetest.Write(t, fewer, comparetest.Settings(8), model("a.onnx", 0, 1, 5))
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{other, []string{"max_iter: 50 in the baseline, 20 in the candidate"}},
		{fewer, []string{"n: 10 in the baseline, 8 in the candidate", "test l2: image 8 audited in the baseline only (10 images there, 8 in the candidate)"}},
	} {
		_, err := compare.Compare(load(t, base, ""), load(t, tc.dir, ""), compare.Options{})
		var me *compare.MismatchError
		if !errors.As(err, &me) {
			t.Fatalf("Compare: %v, want a *MismatchError", err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
}

func TestFolderModel(t *testing.T) {
	dir := t.TempDir()
	comparetest.Write(t, dir, comparetest.Settings(4), model("epoch-000.onnx", 0, 1, 1), model("epoch-001.onnx", 1, 1, 1))
	f, err := compare.ReadFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Model(""); a.Checkpoint != "epoch-001.onnx" || a.Epoch != 1 || len(a.PGD) != 1 {
		t.Errorf("default model %s (epoch %d, %d PGD rows), want the last, epoch-001.onnx", a.Checkpoint, a.Epoch, len(a.PGD))
	}
	if _, err := f.Model("epoch-007"); err == nil || !strings.Contains(err.Error(), "epoch-000.onnx, epoch-001.onnx") {
		t.Errorf("Model(epoch-007): %v, want an error listing the models", err)
	}
	if _, err := compare.ReadFolder(filepath.Join(dir, "nothing")); err == nil {
		t.Error("ReadFolder of a missing folder succeeded")
	}
}
