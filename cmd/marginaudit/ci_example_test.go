package main

import (
	"encoding/xml"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// TestCIExample runs the steps of examples/ci/github-workflow.yml: audit
// examples/ci/model.onnx with the flags in examples/ci/audit-flags and
// diff the audit against the committed baseline with the gates in
// examples/ci/fail-on. The same model must pass; the model with noise
// added to its first layer's weights (its margins shrink) must fail, with
// the tripped gate named on stderr and in the JUnit file.
func TestCIExample(t *testing.T) {
	orttest.Require(t)
	t.Chdir("../..") // the workflow runs at the repository's root
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("examples/ci", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	auditFlags, gates := strings.Fields(read("audit-flags")), read("fail-on")
	if workflow := read("github-workflow.yml"); !strings.Contains(workflow, "examples/ci/audit-flags") || !strings.Contains(workflow, "examples/ci/fail-on") {
		t.Fatal("the workflow no longer reads audit-flags and fail-on: update this test to run what it runs")
	}
	tmp := t.TempDir()
	check := func(model string) (stderr string, code int, junit []byte) {
		t.Helper()
		out := filepath.Join(tmp, filepath.Base(filepath.Dir(model)))
		_, errOut, c := runCLI(t, append([]string{"-q", "audit", model, "--out", out}, auditFlags...)...)
		if c != 0 {
			t.Fatalf("audit of %s exited %d: %s", model, c, errOut)
		}
		file := filepath.Join(tmp, "gates.xml")
		_, stderr, code = runCLI(t, "diff", "examples/ci/baseline", out, "--fail-on", gates, "--junit", file)
		junit, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return stderr, code, junit
	}

	if stderr, code, _ := check("examples/ci/model.onnx"); code != 0 {
		t.Errorf("the baseline's own model: diff exited %d, want 0: %s", code, stderr)
	}

	weak := filepath.Join(tmp, "weak", "model.onnx")
	// Noise as large as the weights: on the 48 images the mean L2 margin
	// drops by 28% and robust accuracy at ε = 0.05 by 0.27, while clean
	// accuracy drops by less than 0.05 (measured when the fixture was made).
	perturbFirstLayer(t, "examples/ci/model.onnx", weak, 1)
	stderr, code, junit := check(weak)
	if code != 1 || !strings.Contains(stderr, "gate mean_margin_drop>5% tripped") {
		t.Errorf("the weakened model: diff exited %d, stderr %q; want 1 naming mean_margin_drop>5%%", code, stderr)
	}
	var doc struct {
		Failures int `xml:"failures,attr"`
		Suite    struct {
			Cases []junitCase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit, &doc); err != nil {
		t.Fatalf("gates.xml: %v", err)
	}
	i := slices.IndexFunc(doc.Suite.Cases, func(c junitCase) bool { return c.Name == "mean_margin_drop>5%" })
	if doc.Failures == 0 || i < 0 || doc.Suite.Cases[i].Failure == nil || !strings.Contains(doc.Suite.Cases[i].Failure.Message, "mean_margin_drop = ") {
		t.Errorf("gates.xml: %+v, want mean_margin_drop>5%% failed with its measured value", doc)
	}
	t.Logf("weakened model: %s", stderr)
}

// junitCase is a JUnit test case as CI services read it.
type junitCase struct {
	Name    string `xml:"name,attr"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
}

// perturbFirstLayer writes to dst the model src with seeded Gaussian noise
// added to the weights of its first MatMul, Gemm or Conv node, f times as
// large as the weights' own root mean square. (Scaling the weights would
// not do: a ReLU network without biases is positively homogeneous, so
// scaled weights scale the logits and leave the decision boundary where it
// was.)
func perturbFirstLayer(t *testing.T, src, dst string, f float64) {
	t.Helper()
	m, err := onnxgrad.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	g := m.GetGraph()
	for _, n := range g.GetNode() {
		if op := n.GetOpType(); op != "MatMul" && op != "Gemm" && op != "Conv" {
			continue
		}
		for i, init := range g.GetInitializer() {
			if init.GetName() != n.GetInput()[1] {
				continue
			}
			w, err := onnxgrad.TensorFloat32(init)
			if err != nil {
				t.Fatal(err)
			}
			var ss float64
			for _, v := range w {
				ss += float64(v) * float64(v)
			}
			rms := math.Sqrt(ss / float64(len(w)))
			rng := rand.New(rand.NewPCG(1, 2))
			for k := range w {
				w[k] += float32(f * rms * rng.NormFloat64())
			}
			g.Initializer[i] = onnxgrad.NewTensorFloat32(init.GetName(), init.GetDims(), w)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := onnxgrad.Save(dst, m); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s: no MatMul, Gemm or Conv node with initialized weights", src)
}
