package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// The corpus test runs every fixture of testdata/models through the
// commands a user with a model made elsewhere runs: inspect, jacobian
// (against torch.autograd) and a 10-image audit. Each fixture is one row of
// testdata/models/fixtures.json, written by testdata/gen/make_fixtures.py,
// so a new op or export form is one fixture and one row, with no Go to
// write. Fixtures that are another fixture's twin in a different form
// (fixed batch, NHWC input, external data, unsorted nodes, probabilities
// instead of logits, another opset) must give their twin's margins.

// corpusFixture is what the test reads of a row of fixtures.json.
type corpusFixture struct {
	Name       string `json:"name"`
	Dir        string `json:"dir"`
	K          int    `json:"k"`
	InputShape []int  `json:"input_shape"`
	// Form is plain, fixed_batch, nhwc, external_data or unsorted.
	Form string `json:"form"`
	// Twin names the fixture with the same weights and inputs, or "".
	Twin   string `json:"twin"`
	Layout string `json:"layout"` // nchw or nhwc
	Scores string `json:"scores"` // logits, softmax or logsoftmax
	// OnnxOnly fixtures have no inputs or Jacobian: models onnxgrad refuses.
	OnnxOnly bool `json:"onnx_only"`
	Large    bool `json:"large"`
}

// corpusImages is the number of images each fixture is audited on.
const corpusImages = 10

// twinTolerance bounds the relative difference of a twin's margins: the
// twins compute the same function in float32 through different graphs
// (Softmax replaced by LogSoftmax, Reshape constants rewritten, a Transpose
// in front), so their DeepFool paths agree to float32 rounding.
const twinTolerance = 1e-4

func TestCorpus(t *testing.T) {
	orttest.Require(t)
	data, err := os.ReadFile(filepath.Join(models, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []corpusFixture
	if err := json.Unmarshal(data, &fixtures); err != nil {
		t.Fatalf("fixtures.json: %v", err)
	}
	byName := map[string]corpusFixture{}
	for _, f := range fixtures {
		byName[f.Name] = f
	}
	margins := map[string]map[string]float64{} // fixture → image/norm → margin
	audit := func(t *testing.T, f corpusFixture) map[string]float64 {
		if m, ok := margins[f.Name]; ok {
			return m
		}
		root := f
		for root.Twin != "" {
			root = byName[root.Twin]
		}
		margins[f.Name] = auditFixture(t, f, corpusInputs(t, root, f.Layout))
		return margins[f.Name]
	}
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			base := filepath.Join(models, f.Dir, f.Name)
			if _, err := os.Stat(base + ".onnx"); f.Large && os.IsNotExist(err) {
				t.Skip("large fixture not generated (make_fixtures.py --large)")
			}
			info := inspectFixture(t, base+".onnx")
			if f.OnnxOnly {
				if info.Differentiable {
					t.Errorf("inspect calls %s differentiable; it holds an op without a rule", f.Name)
				}
				return
			}
			if !info.Differentiable {
				t.Fatalf("inspect: not differentiable: %s", info.GradError)
			}
			checkFixtureJacobian(t, base)
			got := audit(t, f)
			if f.Twin == "" {
				return
			}
			want := audit(t, byName[f.Twin])
			for key, w := range want {
				if g := got[key]; math.Abs(g-w) > twinTolerance*math.Abs(w) {
					t.Errorf("%s: margin %g, twin %s has %g", key, g, f.Twin, w)
				}
			}
		})
	}
}

// inspectFixture runs inspect --json on a model.
func inspectFixture(t *testing.T, model string) inspectReport {
	t.Helper()
	stdout, stderr, code := runCLI(t, "inspect", "--json", model)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	var info inspectReport
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	return info
}

// checkFixtureJacobian runs jacobian on the fixture's inputs and compares
// the result with torch.autograd's.
func checkFixtureJacobian(t *testing.T, base string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "j.npy")
	if _, stderr, code := runCLI(t, "-q", "jacobian", base+".onnx", "--input", base+".x.npy", "--out", out); code != 0 {
		t.Fatalf("jacobian: exit %d: %s", code, stderr)
	}
	got, want := readNPY(t, out), readNPY(t, base+".jac.npy")
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		t.Fatalf("jacobian: shape %v, torch's %v", got.Shape, want.Shape)
	}
	if e := maxRelErr(got.Data, want.Data); e > tolerance {
		t.Errorf("jacobian: max |ΔJ| / max |J| = %.2g against torch.autograd (tolerance %g)", e, tolerance)
	}
}

// corpusInputs makes the audit's images from the fixture's inputs: the
// first ones as they are, the others convex mixtures of two of them with
// uniform noise, all in (0, 1), in the given layout. They are made from
// root's inputs in NCHW, so that twins are audited on the same images.
func corpusInputs(t *testing.T, root corpusFixture, layout string) *npy.Array {
	t.Helper()
	x := readNPY(t, filepath.Join(models, root.Dir, root.Name+".x.npy"))
	n := x.Shape[0]
	per := len(x.Data) / n
	rng := rand.New(rand.NewPCG(2026, 12))
	out := &npy.Array{Shape: append([]int{corpusImages}, x.Shape[1:]...), Data: make([]float32, 0, corpusImages*per)}
	for i := range corpusImages {
		a, b := x.Data[i%n*per:(i%n+1)*per], x.Data[(i+1)%n*per:((i+1)%n+1)*per]
		w := float32(min(i/n, 3)) / 4 // 0 for the first n images
		for j := range per {
			v := (1-w)*a[j] + w*(0.7*b[j]+0.3*rng.Float32())
			out.Data = append(out.Data, min(max(v, 0), 1))
		}
	}
	if root.Layout == "nchw" && layout == "nhwc" {
		out = toNHWC(out)
	}
	return out
}

// toNHWC transposes images [N, C, H, W] to [N, H, W, C].
func toNHWC(x *npy.Array) *npy.Array {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out := &npy.Array{Shape: []int{n, h, w, c}, Data: make([]float32, len(x.Data))}
	for s := range n {
		for ch := range c {
			for i := range h * w {
				out.Data[((s*h*w)+i)*c+ch] = x.Data[(s*c+ch)*h*w+i]
			}
		}
	}
	return out
}

// auditFixture audits a fixture on images x with DeepFool (L2 and L∞) and
// a short PGD, and returns the margins by image and norm. Every image must
// be flipped. The pixel range is wider than the images' (0, 1): the
// fixtures' random weights often give one class the whole unit box, and
// margins are only needed to exist, not to be small.
func auditFixture(t *testing.T, f corpusFixture, x *npy.Array) map[string]float64 {
	t.Helper()
	dir := t.TempDir()
	xf, yf := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	y := &npy.Array{Shape: []int{x.Shape[0]}, Data: make([]float32, x.Shape[0])}
	for i := range y.Data {
		y.Data[i] = float32(i % 10)
	}
	if err := npy.WriteFile(xf, x); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(yf, y); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "audit")
	model := filepath.Join(models, f.Dir, f.Name+".onnx")
	if _, stderr, code := runCLI(t, "-q", "audit", model, "--images", xf, "--labels", yf, "--n", fmt.Sprint(corpusImages),
		"--out", out, "--range", "-8,8", "--norm", "l2,linf", "--pgd-eps", "0.03", "--pgd-steps", "5"); code != 0 {
		t.Fatalf("audit: exit %d: %s", code, stderr)
	}
	recs := readMargins(t, out)
	if len(recs) != 2*corpusImages {
		t.Fatalf("audit: %d margins, want %d", len(recs), 2*corpusImages)
	}
	m := map[string]float64{}
	for _, r := range recs {
		if !r.Success || !(r.Margin > 0) {
			t.Errorf("audit: image %d, %s: no margin (success %v, margin %g)", r.Index, r.Norm, r.Success, r.Margin)
		}
		m[fmt.Sprintf("image %d %s", r.Index, r.Norm)] = r.Margin
	}
	return m
}
