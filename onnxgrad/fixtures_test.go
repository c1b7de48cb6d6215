package onnxgrad

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio"
	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// fixtureTol bounds |J_onnxgrad − J_torch| / max|J_torch| per element. The
// torch Jacobians are float64 rounded to float32; onnxruntime computes in
// float32 with a different summation order, so errors of a few float32 ulps
// of the largest entry (~1e-7 relative each, accumulated over layers) are
// expected. 1e-4 is the bound the foundation issue asks for.
const fixtureTol = 1e-4

// fixtures are the PyTorch-exported models in testdata/models with their
// inputs and torch.autograd Jacobians (testdata/gen/make_fixtures.py).
func fixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../testdata/models/*.jac.npy")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in ../testdata/models (%v)", err)
	}
	// The large fixtures (ResNet-18) are not committed; make_fixtures.py
	// --large writes them, and they are tested when present.
	large, _ := filepath.Glob("../testdata/models/large/*.jac.npy")
	var names []string
	for _, f := range append(files, large...) {
		rel, _ := filepath.Rel("../testdata/models", f)
		names = append(names, strings.TrimSuffix(rel, ".jac.npy"))
	}
	return names
}

// readNpy reads a float32 .npy file with its shape.
func readNpy(t testing.TB, path string) (*testTensor, []float32) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := npyio.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var data []float32
	if err := r.Read(&data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tt := &testTensor{data: make([]float64, len(data))}
	for _, d := range r.Header.Descr.Shape {
		tt.shape = append(tt.shape, int64(d))
	}
	for i, v := range data {
		tt.data[i] = float64(v)
	}
	return tt, data
}

// TestFixtureJacobians compares onnxgrad's shared-forward Jacobian of every
// fixture with torch.autograd's, and the model's logits with PyTorch's.
func TestFixtureJacobians(t *testing.T) {
	rt := newTestRuntime(t)
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("../testdata/models", name)
			m, err := Load(base + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			x, _ := readNpy(t, base+".x.npy")
			wantJ, _ := readNpy(t, base+".jac.npy")
			wantY, _ := readNpy(t, base+".logits.npy")
			res, err := Build(m, Options{Mode: Jacobian, File: name + ".onnx"})
			if err != nil {
				t.Fatal(err)
			}
			out := rt.run(t, res.Model, map[string]*testTensor{"input": x}, append([]string{res.Output}, res.Grads...))
			if e := maxRelErr(out[res.Output].data, wantY.data); e > 1e-5 {
				t.Errorf("logits differ from PyTorch's: max error %.3g relative to max |logit|", e)
			}
			got := out[res.Grads[0]]
			if !equalShapes(got.shape, wantJ.shape) {
				t.Fatalf("Jacobian shape %v, torch's %v", got.shape, wantJ.shape)
			}
			e := maxRelErr(got.data, wantJ.data)
			t.Logf("max |ΔJ| / max |J| = %.3g", e)
			if e > fixtureTol {
				t.Errorf("Jacobian differs from torch.autograd's: max error %.3g relative to max |J| (tolerance %g)", e, fixtureTol)
			}
		})
	}
}

// maxRelErr is max_i |a_i − b_i| / max_i |b_i|.
func maxRelErr(a, b []float64) float64 {
	var diff, scale float64
	for i := range b {
		diff = math.Max(diff, math.Abs(a[i]-b[i]))
		scale = math.Max(scale, math.Abs(b[i]))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

func equalShapes(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParamsGradient checks Params mode (gradients with respect to every
// weight, as training needs) against central finite differences along a
// random direction in weight space, in float32 (h = 1e-3; rounding gives
// ~1e-4 relative). Finite differences need smooth models: a weight
// perturbation of 1e-3 moves pre-activations by ~1e-2, far past the ReLU
// margins of the fixture inputs (1e-5), so ReLU is replaced by Softplus,
// which keeps every other node (Conv, BatchNormalization, Add, pooling,
// Gemm) as exported.
func TestParamsGradient(t *testing.T) {
	rt := newTestRuntime(t)
	for _, name := range []string{"misc_softmax", "misc3", "resnet_small", "cnn"} {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("../testdata/models", name)
			m, err := Load(base + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range m.GetGraph().GetNode() {
				if n.GetOpType() == "Relu" {
					n.OpType = proto.String("Softplus")
				}
			}
			x, _ := readNpy(t, base+".x.npy")
			res, err := Build(m, Options{Mode: Params, File: name})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.WRT) == 0 {
				t.Fatal("no parameters found")
			}
			feeds := map[string]*testTensor{"input": x}
			y := rt.run(t, m, feeds, []string{res.Output})[res.Output]
			rng := rand.New(rand.NewPCG(11, 12))
			v := &testTensor{shape: y.shape, data: randn(rng, len(y.data))}
			feeds[res.Seed] = v
			grads := rt.run(t, res.Model, feeds, res.Grads)
			delete(feeds, res.Seed)
			const h = 1e-3
			u := map[string][]float32{}
			var predicted float64
			inits := map[string]*onnxpb.TensorProto{}
			for _, init := range m.GetGraph().GetInitializer() {
				inits[init.GetName()] = init
			}
			for i, w := range res.WRT {
				vals, err := TensorFloat32(inits[w])
				if err != nil {
					t.Fatal(err)
				}
				u[w] = make([]float32, len(vals))
				for j := range vals {
					u[w][j] = float32(rng.NormFloat64())
					predicted += grads[res.Grads[i]].data[j] * float64(u[w][j])
				}
			}
			perturbed := func(sign float64) *testTensor {
				pm := proto.Clone(m).(*onnxpb.ModelProto)
				for _, init := range pm.GetGraph().GetInitializer() {
					d, ok := u[init.GetName()]
					if !ok {
						continue
					}
					vals, _ := TensorFloat32(init)
					for j := range vals {
						vals[j] += float32(sign*h) * d[j]
					}
					*init = *NewTensorFloat32(init.GetName(), init.GetDims(), vals)
				}
				return rt.run(t, pm, feeds, []string{res.Output})[res.Output]
			}
			fp, fm := perturbed(1), perturbed(-1)
			var measured float64
			for j := range v.data {
				measured += v.data[j] * (fp.data[j] - fm.data[j]) / (2 * h)
			}
			t.Logf("%d parameter tensors: ⟨grad, u⟩ = %.6g, finite difference %.6g", len(res.WRT), predicted, measured)
			if math.Abs(measured-predicted) > 5e-3*(1+math.Abs(measured)) {
				t.Errorf("⟨grad, u⟩ = %.6g, finite difference = %.6g", predicted, measured)
			}
		})
	}
}
