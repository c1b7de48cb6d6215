package main

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// The tests in this file that call orttest.Require need onnxruntime: they
// fail without it when $CI is set and skip otherwise.

// tolerance bounds max |J − J_torch| / max |J_torch|: the fixtures' Jacobians
// come from torch.autograd in float64, and onnxruntime computes in float32
// (testdata/models/README.md measures the ONNX graphs at about 3e-7).
const tolerance = 1e-4

func readNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// maxRelErr returns max |got − want| / max |want|.
func maxRelErr(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	return diff / scale
}

// topClasses returns the indices of the k largest scores of each row of
// logits [N, K], best first.
func topClasses(logits *npy.Array, k int) [][]int {
	n, c := logits.Shape[0], logits.Shape[1]
	out := make([][]int, n)
	for s := range n {
		row := logits.Data[s*c : (s+1)*c]
		idx := make([]int, c)
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case row[a] > row[b]:
				return -1
			case row[a] < row[b]:
				return 1
			}
			return 0
		})
		out[s] = idx[:k]
	}
	return out
}

// selectRows returns J[n, classes[n][l], ...] as an array [N, L, ...].
func selectRows(j *npy.Array, classes [][]int) []float32 {
	n, k := j.Shape[0], j.Shape[1]
	per := len(j.Data) / (n * k)
	var out []float32
	for s, cs := range classes {
		for _, c := range cs {
			out = append(out, j.Data[(s*k+c)*per:(s*k+c+1)*per]...)
		}
	}
	return out
}

// The model that grad --jacobian writes runs in onnxruntime with the output
// shapes that grad printed, and computes torch's Jacobian.
func TestGradJacobianRuns(t *testing.T) {
	orttest.Require(t)
	x := readNPY(t, models+"/cnn.x.npy")
	torchJ := readNPY(t, models+"/cnn.jac.npy")
	logits := readNPY(t, models+"/cnn.logits.npy")
	for _, tt := range []struct {
		name    string
		args    []string
		outputs map[string][]int64
	}{
		{"all", []string{"--jacobian"}, map[string][]int64{"logits": {4, 10}, "input_jacobian": {4, 10, 1, 28, 28}}},
		{"top3", []string{"--jacobian", "--classes", "3"}, map[string][]int64{"logits": {4, 10}, "logits_classes": {4, 3}, "input_jacobian": {4, 3, 1, 28, 28}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "g.onnx")
			_, stderr, code := runCLI(t, append([]string{"grad", models + "/cnn.onnx", "--out", out}, tt.args...)...)
			if code != 0 {
				t.Fatalf("grad: exit status %d; stderr:\n%s", code, stderr)
			}
			s, err := ort.OpenSession(out, ort.SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if len(s.Inputs()) != 1 || s.Inputs()[0].Name != "input" {
				t.Fatalf("inputs %v, want only input", s.Inputs())
			}
			outs := make([]ort.Value, len(s.Outputs()))
			if err := s.Run([]ort.Value{ort.NewValue(x.Data, 4, 1, 28, 28)}, outs); err != nil {
				t.Fatal(err)
			}
			got := map[string]ort.Value{}
			for i, info := range s.Outputs() {
				got[info.Name] = outs[i]
			}
			if len(got) != len(tt.outputs) {
				t.Errorf("outputs %v, want %v", s.Outputs(), tt.outputs)
			}
			for name, shape := range tt.outputs {
				if !slices.Equal(got[name].Shape, shape) {
					t.Errorf("output %q has shape %v, want %v", name, got[name].Shape, shape)
				}
			}
			jac := &npy.Array{Shape: []int{4, 10, 1, 28, 28}, Data: got["input_jacobian"].Float32s()}
			want := torchJ.Data
			if c := got["logits_classes"]; c.Data != nil {
				top := topClasses(logits, 3)
				for s, cs := range top {
					for l, k := range cs {
						if g := c.Int64s()[s*3+l]; g != int64(k) {
							t.Errorf("class [%d, %d] = %d, want %d", s, l, g, k)
						}
					}
				}
				want = selectRows(torchJ, top)
				jac.Shape[1] = 3
			}
			if e := maxRelErr(jac.Data, want); e > tolerance {
				t.Errorf("max |J − J_torch| / max |J_torch| = %.2g, want ≤ %g", e, tolerance)
			}
		})
	}
}

// jacobian matches torch's Jacobian of the cnn fixture, also in batches
// that do not divide N, and with --classes.
func TestJacobianMatchesTorch(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	torchJ := readNPY(t, models+"/cnn.jac.npy")
	logits := readNPY(t, models+"/cnn.logits.npy")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"jacobian_cnn", nil},
		{"jacobian_cnn_batch3", []string{"--batch", "3", "--threads", "1"}},
		{"jacobian_cnn_classes", []string{"--classes", "3", "--batch=2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".npy")
			args := append([]string{"-q", "jacobian", models + "/cnn.onnx", "--input", models + "/cnn.x.npy", "--out", out}, tt.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr %q with -q, want nothing", stderr)
			}
			checkGolden(t, tt.name+".stdout", strings.ReplaceAll(stdout, dir, "DIR"))
			j := readNPY(t, out)
			want := torchJ
			if slices.Contains(tt.args, "--classes") {
				classes := readNPY(t, classesPath(out))
				top := topClasses(logits, 3)
				if !slices.Equal(classes.Shape, []int{4, 3}) {
					t.Fatalf("classes have shape %v, want [4 3]", classes.Shape)
				}
				for s, cs := range top {
					for l, k := range cs {
						if g := classes.Data[s*3+l]; g != float32(k) {
							t.Errorf("class [%d, %d] = %v, want %d", s, l, g, k)
						}
					}
				}
				want = &npy.Array{Shape: []int{4, 3, 1, 28, 28}, Data: selectRows(torchJ, top)}
			}
			if !slices.Equal(j.Shape, want.Shape) {
				t.Fatalf("J has shape %v, want %v", j.Shape, want.Shape)
			}
			if e := maxRelErr(j.Data, want.Data); e > tolerance {
				t.Errorf("max |J − J_torch| / max |J_torch| = %.2g, want ≤ %g", e, tolerance)
			}
		})
	}
}

// sqrtModel writes a model computing logits = √x for x of shape [N, 2].
func sqrtModel(t *testing.T, path string) {
	t.Helper()
	vi := func(name string) *onnxpb.ValueInfoProto {
		dims := []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 2}},
		}
		tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:   proto.String("sqrt"),
			Node:   []*onnxpb.NodeProto{{Name: proto.String("sqrt"), OpType: proto.String("Sqrt"), Input: []string{"x"}, Output: []string{"logits"}}},
			Input:  []*onnxpb.ValueInfoProto{vi("x")},
			Output: []*onnxpb.ValueInfoProto{vi("logits")},
		},
	}
	if err := onnxgrad.Save(path, m); err != nil {
		t.Fatal(err)
	}
}

// A non-finite Jacobian is an error, and no J.npy is written: ∂√x/∂x is
// infinite at x = 0.
func TestJacobianNonFinite(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	model, in, out := filepath.Join(dir, "sqrt.onnx"), filepath.Join(dir, "x.npy"), filepath.Join(dir, "j.npy")
	sqrtModel(t, model)
	if err := npy.WriteFile(in, &npy.Array{Shape: []int{2, 2}, Data: []float32{1, 4, 0, 9}}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "-q", "jacobian", model, "--input", in, "--out", out)
	if want := "the Jacobian of sample 1 has the non-finite value +Inf (row 0)"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the failed run wrote %s", out)
	}
}

// A non-finite input is an error before onnxruntime runs.
func TestJacobianNonFiniteInput(t *testing.T) {
	dir := t.TempDir()
	model, in := filepath.Join(dir, "sqrt.onnx"), filepath.Join(dir, "x.npy")
	sqrtModel(t, model)
	if err := npy.WriteFile(in, &npy.Array{Shape: []int{2, 2}, Data: []float32{1, 4, float32(math.NaN()), 9}}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "jacobian", model, "--input", in, "--out", filepath.Join(dir, "j.npy"))
	if want := "x.npy: sample 1 holds the non-finite value NaN"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSelfcheck(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	for _, name := range []string{"cnn", "mlp"} {
		for _, ext := range []string{".onnx", ".x.npy", ".jac.npy", ".logits.npy"} {
			copyFile(t, models+"/"+name+ext, filepath.Join(dir, name+ext))
		}
	}
	copyFile(t, models+"/unsupported.onnx", filepath.Join(dir, "unsupported.onnx")) // no inputs: skipped

	stdout, stderr, code := runCLI(t, "selfcheck", "--fixtures", dir, "--threads", "1")
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "fixture") || !strings.HasPrefix(lines[1], "cnn ") || !strings.HasPrefix(lines[2], "mlp ") {
		t.Errorf("stdout:\n%s\nwant a header and rows for cnn and mlp", stdout)
	}
	if !strings.Contains(stderr, "skipping unsupported") {
		t.Errorf("stderr %q does not mention skipping unsupported", stderr)
	}

	// A fixture whose reference Jacobian is another model's fails, and the
	// demo goes on to the next.
	copyFile(t, models+"/cnn.onnx", filepath.Join(dir, "bad.onnx"))
	for _, ext := range []string{".x.npy", ".jac.npy", ".logits.npy"} {
		copyFile(t, models+"/mlp"+ext, filepath.Join(dir, "bad"+ext))
	}
	stdout, stderr, code = runCLI(t, "-q", "selfcheck", "--fixtures", dir)
	if code != 1 {
		t.Errorf("exit status %d with a bad fixture, want 1", code)
	}
	if !strings.Contains(stdout, "bad ") || !strings.Contains(stdout, "failed") || !strings.Contains(stdout, "\nmlp ") {
		t.Errorf("stdout:\n%s\nwant bad failed and mlp measured", stdout)
	}
	if !strings.Contains(stderr, "selfcheck: bad: onnxruntime differs from torch") || !strings.Contains(stderr, "marginaudit: selfcheck: 1 of 3 fixtures failed") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// linearMargins on a two-class linear model: f = (0, w·x + b) has the
// exact distance |w·x + b| / ‖w‖ to its boundary.
func TestLinearMargins(t *testing.T) {
	// Sample 0: f = (0, 3), ∇f_1 − ∇f_0 = (3, 4): margin 3/5.
	// Sample 1: f = (2, 1, −5), the closest class is 1 with ‖(1, 1) − (0, 0)‖ = √2: 1/√2.
	f := &npy.Array{Shape: []int{1, 2}, Data: []float32{0, 3}}
	j := &npy.Array{Shape: []int{1, 2, 2}, Data: []float32{0, 0, 3, 4}}
	if got := linearMargins(f, j); math.Abs(got[0]-0.6) > 1e-7 {
		t.Errorf("margin %v, want 0.6", got)
	}
	f = &npy.Array{Shape: []int{1, 3}, Data: []float32{2, 1, -5}}
	j = &npy.Array{Shape: []int{1, 3, 2}, Data: []float32{0, 0, 1, 1, 0, 0.1}}
	if got := linearMargins(f, j); math.Abs(got[0]-1/math.Sqrt2) > 1e-7 {
		t.Errorf("margin %v, want 1/√2", got)
	}
	// The same first sample through a softmax: p = softmax(0, 3) with
	// ∇p_k = p_k (∇f_k − Σ_j p_j ∇f_j) is taken as log p, whose gap and
	// gradient difference are the logits': margin 3/5 again.
	p1 := 1 / (1 + math.Exp(-3))
	p0 := 1 - p1
	gbar := [2]float64{p1 * 3, p1 * 4} // Σ_j p_j ∇f_j
	f = &npy.Array{Shape: []int{1, 2}, Data: []float32{float32(p0), float32(p1)}}
	j = &npy.Array{Shape: []int{1, 2, 2}, Data: []float32{
		float32(p0 * (0 - gbar[0])), float32(p0 * (0 - gbar[1])),
		float32(p1 * (3 - gbar[0])), float32(p1 * (4 - gbar[1])),
	}}
	if got := linearMargins(f, j); math.Abs(got[0]-0.6) > 1e-5 {
		t.Errorf("margin of the softmax %v, want 0.6, the logits'", got)
	}
}

// A cancelled context (Ctrl-C) stops compute before the next batch.
func TestJacobianCancelled(t *testing.T) {
	orttest.Require(t)
	x := readNPY(t, models+"/cnn.x.npy")
	jm, err := buildJacobian(models+"/cnn.onnx", x.Shape, jacobianOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := jm.open(1); err != nil {
		t.Fatal(err)
	}
	defer jm.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	_, err = jm.compute(ctx, x, 1, func(done, total int) {
		runs++
		cancel()
	})
	if !errors.Is(err, context.Canceled) || runs != 1 {
		t.Errorf("compute after cancel: %d runs, error %v; want 1 run and context.Canceled", runs, err)
	}
}

// jacobian and audit agree on models exported with a fixed batch: the cnn
// and mlp fixtures with their batch fixed at 1 (rewritten to a symbolic
// batch) and merged at 2 (fed 2 samples per run, the last of 3 padded).
// J must equal the classifier's Jacobian (the same graphs in onnxruntime:
// to float32 rounding, 1e-5 of the largest), with --classes too, and
// torch's for the fixtures' first 3 samples.
func TestJacobianFixedBatch(t *testing.T) {
	orttest.Require(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, fixture string
		fixed         func(*onnxpb.ModelProto, int64) *onnxpb.ModelProto
		b             int64
		want          string
	}{
		{"cnn_fixed1", "cnn", testmodels.FixBatch, 1, "batch fixed at 1: rewritten to symbolic"},
		{"mlp_merged2", "mlp", testmodels.MergeBatch, 2, "batch fixed at 2: fed 2 images per run (the rewritten model: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := onnxgrad.Load(models + "/" + tc.fixture + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			fixed := tc.fixed(m, tc.b)
			model, in := filepath.Join(dir, tc.name+".onnx"), filepath.Join(dir, tc.name+".x.npy")
			if err := onnxgrad.Save(model, fixed); err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, models+"/"+tc.fixture+".x.npy")
			x = &npy.Array{Shape: append([]int{3}, x.Shape[1:]...), Data: x.Data[:3*len(x.Data)/x.Shape[0]]}
			if err := npy.WriteFile(in, x); err != nil {
				t.Fatal(err)
			}
			clf, err := attack.NewClassifier(fixed, attack.Options{Name: tc.name, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer clf.Close()
			_, want, err := clf.Jacobian(x.Data, 3)
			if err != nil {
				t.Fatal(err)
			}
			torchJ := readNPY(t, models+"/"+tc.fixture+".jac.npy")
			for _, args := range [][]string{nil, {"--classes", "10", "--batch", "2"}} {
				out := filepath.Join(dir, tc.name+".j.npy")
				_, stderr, code := runCLI(t, append([]string{"jacobian", model, "--input", in, "--out", out, "--threads", "1"}, args...)...)
				if code != 0 {
					t.Fatalf("%v: exit status %d; stderr:\n%s", args, code, stderr)
				}
				if !strings.Contains(stderr, "jacobian: "+model+": "+tc.want) {
					t.Errorf("%v: stderr %q does not say %q", args, stderr, tc.want)
				}
				j := readNPY(t, out)
				if !slices.Equal(j.Shape, []int{3, 10, 1, 28, 28}) {
					t.Fatalf("%v: J has shape %v", args, j.Shape)
				}
				if args != nil { // all 10 classes, best first: back to class order
					classes := readNPY(t, classesPath(out))
					j.Data = unsortRows(j.Data, classes.Data, 10)
				}
				if e := maxRelErr(j.Data, want); e > 1e-5 {
					t.Errorf("%v: max |J − J_classifier| / max |J_classifier| = %.2g", args, e)
				}
				if e := maxRelErr(j.Data, torchJ.Data[:len(j.Data)]); e > tolerance {
					t.Errorf("%v: max |J − J_torch| / max |J_torch| = %.2g", args, e)
				}
			}
		})
	}
}

// unsortRows puts the rows of j [N, K, ...], ordered as classes [N, K]
// says, back in class order.
func unsortRows(j, classes []float32, k int) []float32 {
	out := make([]float32, len(j))
	per := len(j) / len(classes)
	for r, c := range classes {
		s := r / k
		copy(out[(s*k+int(c))*per:(s*k+int(c)+1)*per], j[r*per:(r+1)*per])
	}
	return out
}
