package auditor

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

func TestConfidenceRoundTrip(t *testing.T) {
	rows := []Confidence{
		{Checkpoint: "epoch-000.onnx", Epoch: 0, Split: Train, Index: 7, MaxSoftmax: 0.1},
		{Checkpoint: "epoch-000.onnx", Epoch: 0, Split: Test, Index: 7, MaxSoftmax: 1},
		{Checkpoint: `a,"b".onnx`, Epoch: 3, Split: Test, Index: 0, MaxSoftmax: math.Nextafter(1, 0)},
		{Checkpoint: `a,"b".onnx`, Epoch: 3, Split: Test, Index: 1, MaxSoftmax: 5e-324},
	}
	var b bytes.Buffer
	if err := WriteConfidence(&b, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfidence(bytes.NewReader(b.Bytes()), ConfidenceFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("%d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		if got[i] != rows[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], rows[i])
		}
	}
	want := "checkpoint,epoch,split,index,max_softmax\n" +
		"epoch-000.onnx,0,train,7,0.1\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("file starts\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteConfidenceRejectsInvalid(t *testing.T) {
	for _, c := range []Confidence{
		{Checkpoint: "", Split: Test, MaxSoftmax: 0.5},
		{Checkpoint: "a.onnx", Epoch: -1, Split: Test, MaxSoftmax: 0.5},
		{Checkpoint: "a.onnx", Split: "val", MaxSoftmax: 0.5},
		{Checkpoint: "a.onnx", Split: Test, Index: -2, MaxSoftmax: 0.5},
		{Checkpoint: "a.onnx", Split: Test, MaxSoftmax: math.NaN()},
		{Checkpoint: "a.onnx", Split: Test, MaxSoftmax: 1.0000001},
	} {
		if err := WriteConfidence(new(bytes.Buffer), []Confidence{c}); err == nil {
			t.Errorf("%+v was written", c)
		}
	}
}

func TestReadConfidenceErrors(t *testing.T) {
	head := strings.Join(ConfidenceHeader, ",") + "\n"
	good := "e1.onnx,1,test,0,0.5\n"
	testParseErrors(t, ConfidenceHeader, ReadConfidence, []parseErrorCase{
		{"epoch", head + strings.Replace(good, ",1,", ",x,", 1), 2, 2, `invalid integer "x"`},
		{"negative epoch", head + strings.Replace(good, ",1,", ",-1,", 1), 2, 2, "negative epoch"},
		{"split", head + strings.Replace(good, "test", "val", 1), 2, 3, `unknown split "val"`},
		{"index", head + strings.Replace(good, ",0,", ",-3,", 1), 2, 4, "negative index"},
		{"number", head + strings.Replace(good, "0.5", "high", 1), 2, 5, `invalid number "high"`},
		{"probability", head + strings.Replace(good, "0.5", "1.5", 1), 2, 5, "max_softmax 1.5 is not a probability"},
		{"nan", head + strings.Replace(good, "0.5", "NaN", 1), 2, 5, "max_softmax NaN is not a probability"},
		{"checkpoint", head + strings.Replace(good, "e1.onnx", "runs/e1.onnx", 1), 2, 1, "not a plain file name"},
		{"duplicate", head + good + strings.Replace(good, "0.5", "0.6", 1), 3, 0, "duplicate row for e1.onnx test image 0 (first on line 2)"},
		{"two epochs", head + good + strings.Replace(good, ",1,test,0,", ",2,test,1,", 1), 3, 2, "epoch 2 here and 1 above"},
	})
}

// FuzzReadConfidence checks that ReadConfidence never panics and that
// whatever it accepts writes back to rows it reads again unchanged.
func FuzzReadConfidence(f *testing.F) {
	head := strings.Join(ConfidenceHeader, ",") + "\n"
	f.Add([]byte(head))
	f.Add([]byte(head + "a.onnx,1,test,0,0.5\na.onnx,1,train,0,1\n"))
	f.Add([]byte(head + "\"a,\"\"b\"\".onnx\",0,train,12,0x1p-3\r\n"))
	f.Add([]byte(head + "a.onnx,1,test,0,4.9e-324"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, ReadConfidence, WriteConfidence, func(a, b Confidence) bool { return a == b })
	})
}

func TestMaxSoftmax(t *testing.T) {
	third := math.Log(1.0 / 3)
	for _, tc := range []struct {
		name   string
		scores []float32
		want   float64
		tol    float64
	}{
		{"tie", []float32{0, 0}, 0.5, 0},
		{"three ties", []float32{-7, -7, -7}, 1.0 / 3, 1e-16},
		// exp(log 3)/(exp(log 3)+1) = 3/4; log 3 rounded to float32.
		{"log 3", []float32{float32(math.Log(3)), 0}, 0.75, 1e-7},
		// Naive exp(1000) overflows; shifted by the maximum it does not.
		{"large", []float32{1000, 0}, 1, 0},
		{"large ties", []float32{1000, 1000, -1000}, 0.5, 0},
		{"very negative", []float32{-1000, -1001}, 1 / (1 + math.Exp(-1)), 1e-16},
		// Log-probabilities give the probability: softmax(log p) = p, up
		// to the float32 rounding of log p (relative 6e-8 of |log p|).
		{"log-probabilities", []float32{float32(math.Log(0.2)), float32(math.Log(0.7)), float32(math.Log(0.1))}, 0.7, 1e-7},
		{"uniform log-probabilities", []float32{float32(third), float32(third), float32(third)}, 1.0 / 3, 1e-16},
		{"nan", []float32{0, float32(math.NaN())}, math.NaN(), 0},
	} {
		got := maxSoftmax(tc.scores)
		if math.IsNaN(tc.want) {
			if !math.IsNaN(got) {
				t.Errorf("%s: %v, want NaN", tc.name, got)
			}
			continue
		}
		if math.Abs(got-tc.want) > tc.tol {
			t.Errorf("%s: %v, want %v ± %g", tc.name, got, tc.want, tc.tol)
		}
	}
}

// TestMaxSoftmaxesFixtures compares the confidences of the classifiers of
// three fixture models with those of the PyTorch outputs saved beside them:
// logits (mlp), probabilities (misc_softmax: the largest output itself;
// the classifier's scores are log-probabilities) and log-probabilities
// (misc_logsoftmax). onnxruntime
// and PyTorch agree to 2.4e-7 of the largest output (fixtures.json,
// onnx_vs_torch_f32), and the largest softmax probability moves by at most
// ½·max|Δz| when the logits move by Δz, hence the tolerance of 1e-6.
func TestMaxSoftmaxesFixtures(t *testing.T) {
	orttest.Require(t)
	for _, tc := range []struct {
		name   string
		source attack.ScoreSource
		want   func(row []float32) float64
	}{
		{"mlp", attack.ScoresLogits, softmaxMax},
		{"misc_softmax", attack.ScoresSoftmaxReplaced, func(row []float32) float64 { return float64(slices.Max(row)) }},
		{"misc_logsoftmax", attack.ScoresLogSoftmax, func(row []float32) float64 { return math.Exp(float64(slices.Max(row))) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := onnxgrad.Load("../testdata/models/" + tc.name + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			clf, err := attack.NewClassifier(m, attack.Options{Name: tc.name, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer clf.Close()
			if clf.ScoreSource() != tc.source {
				t.Fatalf("ScoreSource() = %q, want %q", clf.ScoreSource(), tc.source)
			}
			x := mustNpy(t, "../testdata/models/"+tc.name+".x.npy")
			ref := mustNpy(t, "../testdata/models/"+tc.name+".logits.npy")
			n := int(x.Shape[0])
			im := &Images{X: x.Data, Labels: make([]int, n), Index: make([]int, n)}
			got, err := maxSoftmaxes(clf, im)
			if err != nil {
				t.Fatal(err)
			}
			k := len(ref.Data) / n
			for i := range n {
				want := tc.want(ref.Data[i*k : (i+1)*k])
				if math.Abs(got[i]-want) > 1e-6 {
					t.Errorf("image %d: max-softmax %v, PyTorch's %v", i, got[i], want)
				}
			}
		})
	}
}

// softmaxMax is the largest softmax probability of a row of logits, by
// the textbook formula max_k exp(z_k)/Σ_j exp(z_j) in float64 (fine for
// the fixtures' small logits).
func softmaxMax(row []float32) float64 {
	var sum, top float64
	for _, z := range row {
		e := math.Exp(float64(z))
		sum += e
		top = max(top, e)
	}
	return top / sum
}

func mustNpy(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
