package auditor

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got\n%s", name, got)
	}
}

func readGoldenInput(t *testing.T) []Record {
	t.Helper()
	f, err := os.Open("testdata/margins.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadRecords(f, "testdata/margins.csv")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func testSettings() *Settings {
	return &Settings{
		Data: "mnist", Splits: []Split{Test, Train}, N: 4, Sample: "first", Seed: 1,
		Range: [2]float64{0, 1}, Norms: []Norm{L2, LInf},
		DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10}, RefineParams: attack.DefaultRefineParams(),
		PGD: PGDSettings{Norms: []Norm{LInf}, Eps: []float64{0.1, 0.3}, PGDParams: attack.PGDParams{Steps: 40, Step: 0.1, RandomStart: true}},
	}
}

func testPGD() []PGDResult {
	return []PGDResult{
		{Checkpoint: "epoch-001.onnx", Epoch: 1, Split: Test, Norm: LInf, Eps: 0.3, Images: 4, Robust: 0},
		{Checkpoint: "epoch-001.onnx", Epoch: 1, Split: Test, Norm: LInf, Eps: 0.1, Images: 4, Robust: 1},
		{Checkpoint: "epoch-000.onnx", Epoch: 0, Split: Test, Norm: LInf, Eps: 0.1, Images: 4, Robust: 3},
	}
}

func TestSummaryGolden(t *testing.T) {
	s, err := Summarize(readGoldenInput(t), testPGD(), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.json", b.Bytes())

	b.Reset()
	if err := WriteTransitions(&b, s.Transitions); err != nil {
		t.Fatal(err)
	}
	golden(t, "transitions.golden.csv", b.Bytes())

	// The summary reads back to itself.
	var again bytes.Buffer
	s2, err := ReadSummary(bytes.NewReader(b.Bytes()), "x")
	if err == nil {
		t.Fatalf("transitions.csv read as a summary: %+v", s2)
	}
	b.Reset()
	WriteSummary(&b, s)
	s2, err = ReadSummary(&b, "summary.json")
	if err != nil {
		t.Fatal(err)
	}
	WriteSummary(&again, s2)
	b.Reset()
	WriteSummary(&b, s)
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Errorf("summary does not round-trip:\n%s", again.String())
	}
}

// TestSummarizeByHand checks numbers of the golden summary computed by
// hand from testdata/margins.csv.
func TestSummarizeByHand(t *testing.T) {
	s, err := Summarize(readGoldenInput(t), testPGD(), nil)
	if err != nil {
		t.Fatal(err)
	}
	find := func(epoch int, split Split, norm Norm, kind GroupKind) Group {
		t.Helper()
		for _, g := range s.Groups {
			if g.Epoch == epoch && g.Split == split && g.Norm == norm && g.Group == kind {
				return g
			}
		}
		t.Fatalf("no group %d %s %s %s", epoch, split, norm, kind)
		return Group{}
	}
	const tol = 1e-15
	near := func(name string, got Float, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > tol*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	// Epoch 0, test, L2: margins 1, 2, 3, 4. Sample variance
	// ((1.5² + 0.5²)·2)/3 = 5/3, so SE = √(5/3)/√4.
	g := find(0, Test, L2, All)
	if g.Images != 4 || g.Failures != 0 || g.Margin.N != 4 {
		t.Errorf("epoch 0 test l2 all: %+v", g)
	}
	near("mean", g.Margin.Mean, 2.5)
	near("se", g.Margin.SE, math.Sqrt(5.0/3)/2)
	near("median", g.Margin.Median, 2) // empirical: the 2nd of 4, no interpolation
	near("q1", g.Margin.Q1, 1)
	near("q3", g.Margin.Q3, 3)
	// Correct images 0, 1, 3: margins 1, 2, 4, mean 7/3, deviations
	// −4/3, −1/3, 5/3, variance (16 + 1 + 25)/9/2 = 7/3, SE = √(7/3)/√3.
	g = find(0, Test, L2, Correct)
	near("correct mean", g.Margin.Mean, 7.0/3)
	near("correct se", g.Margin.SE, math.Sqrt(7.0/9))
	// The one incorrect image: no standard error.
	g = find(0, Test, L2, Incorrect)
	if g.Margin.N != 1 || !math.IsNaN(float64(g.Margin.SE)) || g.Margin.Mean != 3 {
		t.Errorf("epoch 0 test l2 incorrect: %+v", g.Margin)
	}
	// L∞: image 3 failed; it counts as a failure, not as a margin.
	g = find(0, Test, LInf, All)
	if g.Images != 4 || g.Failures != 1 || g.Margin.N != 3 {
		t.Errorf("epoch 0 test linf all: %+v", g)
	}
	near("linf mean", g.Margin.Mean, 0.2)
	if g := find(0, Test, LInf, Correct); g.Failures != 1 || g.Margin.N != 2 {
		t.Errorf("epoch 0 test linf correct: %+v", g)
	}
	// Refined margins exist in the input, so every group has them: the
	// epoch-0 groups with none refined have n = 0.
	if g := find(0, Test, L2, All); g.MarginRefined == nil || g.MarginRefined.N != 0 {
		t.Errorf("epoch 0 refined: %+v", g.MarginRefined)
	}
	// Epoch 1, test, L2: refined 0.2, 2.25, 0.5 (image 2 not refined).
	if g := find(1, Test, L2, All); g.MarginRefined.N != 3 || float64(g.MarginRefined.Median) != 0.5 {
		t.Errorf("epoch 1 refined: %+v", g.MarginRefined)
	}
	// Epoch 2: image 1 failed; its margin 12.5 stays out of the mean.
	g = find(2, Test, L2, All)
	near("epoch 2 mean", g.Margin.Mean, (1.25+0.875+2)/3)

	// Accuracy: epoch 0 test 3 of 4 (each image once over two norms),
	// train 1 of 2.
	acc := s.Checkpoints[0].Accuracy
	if len(acc) != 2 || acc[0].Split != Train || acc[0].Correct != 1 || acc[0].Images != 2 ||
		acc[1].Split != Test || acc[1].Correct != 3 || acc[1].Images != 4 || acc[1].Accuracy != 0.75 {
		t.Errorf("epoch 0 accuracy: %+v", acc)
	}

	// Transitions, image by image:
	// train 0→1: 0 c→c, 1 i→c.
	// test 0→1: 0 c→i, 1 c→c, 2 i→c, 3 c→c.
	// test 1→2: 0 i→c, 1 c→c, 2 c→i, 3 only at 1, 4 only at 2.
	want := []Transition{
		{Split: Train, FromEpoch: 0, ToEpoch: 1, CorrectCorrect: 1, IncorrectCorrect: 1},
		{Split: Test, FromEpoch: 0, ToEpoch: 1, CorrectCorrect: 2, CorrectIncorrect: 1, IncorrectCorrect: 1},
		{Split: Test, FromEpoch: 1, ToEpoch: 2, CorrectCorrect: 1, CorrectIncorrect: 1, IncorrectCorrect: 1, OnlyFrom: 1, OnlyTo: 1},
	}
	if len(s.Transitions) != len(want) {
		t.Fatalf("transitions: %+v", s.Transitions)
	}
	for i, w := range want {
		got := s.Transitions[i]
		got.FromCheckpoint, got.ToCheckpoint = "", ""
		if got != w {
			t.Errorf("transition %d = %+v, want %+v", i, got, w)
		}
	}

	// PGD sorted by epoch, then eps.
	if p := s.PGD; len(p) != 3 || p[0].Epoch != 0 || p[1].Eps != 0.1 || p[2].Eps != 0.3 || p[1].RobustAccuracy != 0.25 {
		t.Errorf("pgd: %+v", p)
	}
}

func TestDescribe(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		x    []float64
		want [8]float64 // n, mean, se, min, q1, median, q3, max
	}{
		{"empty", nil, [8]float64{0, nan, nan, nan, nan, nan, nan, nan}},
		{"one", []float64{2}, [8]float64{1, 2, nan, 2, 2, 2, 2, 2}},
		// Unsorted input. Variance of 1..4 is 5/3; SE = √(5/3)/2.
		{"four", []float64{4, 1, 3, 2}, [8]float64{4, 2.5, math.Sqrt(5.0/3) / 2, 1, 1, 2, 3, 4}},
		// Empirical quantiles of 1..5: the smallest k with k ≥ p·5, so
		// q1 = x₂ (1.25), median = x₃ (2.5), q3 = x₄ (3.75). Variance 2.5.
		{"five", []float64{5, 4, 3, 2, 1}, [8]float64{5, 3, math.Sqrt(2.5 / 5), 1, 2, 3, 4, 5}},
		{"equal", []float64{0.5, 0.5}, [8]float64{2, 0.5, 0, 0.5, 0.5, 0.5, 0.5, 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Describe(tc.x)
			got := [8]float64{float64(d.N), float64(d.Mean), float64(d.SE), float64(d.Min), float64(d.Q1), float64(d.Median), float64(d.Q3), float64(d.Max)}
			for i := range got {
				w, g := tc.want[i], got[i]
				if math.IsNaN(w) != math.IsNaN(g) || (!math.IsNaN(w) && math.Abs(g-w) > 1e-15) {
					t.Errorf("field %d = %v, want %v (%+v)", i, g, w, d)
				}
			}
		})
	}
}

func TestSummarizeRejectsInconsistent(t *testing.T) {
	base := func() []Record {
		return []Record{
			rec("a.onnx", 0, Test, 0, 1, 1, L2, 0.5, true),
			rec("a.onnx", 0, Test, 0, 1, 1, LInf, 0.05, true),
			rec("b.onnx", 1, Test, 0, 1, 2, L2, 0.5, true),
		}
	}
	for _, tc := range []struct {
		name   string
		change func([]Record) []Record
		msg    string
	}{
		{"prediction differs by norm", func(r []Record) []Record {
			r[1].Pred, r[1].Correct = 2, false
			return r
		}, "a.onnx test image 0: label 1 and prediction 1 in norm l2 but label 1 and prediction 2 in norm linf"},
		{"duplicate", func(r []Record) []Record { return append(r, r[0]) }, "two records for a.onnx test image 0 norm l2"},
		{"epoch claimed twice", func(r []Record) []Record {
			r[2].Epoch = 0
			return r
		}, "checkpoints a.onnx and b.onnx both have epoch 0"},
		{"two epochs", func(r []Record) []Record {
			r[1].Epoch = 3
			return r
		}, "checkpoint a.onnx has epochs 0 and 3"},
		{"invalid", func(r []Record) []Record {
			r[0].Margin = -1
			return r
		}, "record 0 (a.onnx test image 0 l2): margin: margin -1 is not a finite number ≥ 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Summarize(tc.change(base()), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %q", err, tc.msg)
			}
			if _, terr := Transitions(tc.change(base())); terr == nil {
				t.Error("Transitions accepted it")
			}
		})
	}
	bad := []PGDResult{{Checkpoint: "a.onnx", Epoch: 0, Split: Test, Norm: LInf, Eps: 0.1, Images: 2, Robust: 3}}
	if _, err := Summarize(base(), bad, nil); err == nil || !strings.Contains(err.Error(), "robust 3 of 2 images") {
		t.Errorf("PGD: err = %v", err)
	}
}

func TestSummaryEmpty(t *testing.T) {
	s, err := Summarize(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteSummary(&b, s)
	want := `{
  "format": "marginaudit-summary",
  "version": 1,
  "settings": null,
  "checkpoints": [],
  "groups": [],
  "transitions": [],
  "pgd": []
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
