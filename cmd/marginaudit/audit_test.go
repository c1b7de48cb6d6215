package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Golden stderr of audits refused by the auditor: arrays that do not fit
// the model (with the fix as a hint), uint8 images outside the model's
// range, a per-channel normalisation for another layout.
func TestAuditRefusals(t *testing.T) {
	orttest.Require(t)
	cnn := models + "/cnn.onnx"
	tests := []struct {
		name string
		args []string
	}{
		{"audit_nhwc_array", []string{"--images", arrays + "/x_nhwc.npy", "--labels", arrays + "/y.npy"}},
		{"audit_flat_array", []string{"--images", arrays + "/x_flat.npy", "--labels", arrays + "/y.npy"}},
		{"audit_uint8_no_range", []string{"--images", arrays + "/x_u8.npy", "--labels", arrays + "/y_u8.npy"}},
		{"audit_mean_per_channel", []string{"--images", models + "/cnn.x.npy", "--labels", arrays + "/y.npy", "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "audit")
			args := append([]string{"audit", cnn, "-q", "--threads", "1", "--out", out}, tt.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			checkGolden(t, tt.name+".stdout", strings.ReplaceAll(stdout, out, "OUT"))
			checkGolden(t, tt.name+".stderr", strings.ReplaceAll(stderr, out, "OUT"))
		})
	}
}

// An NHWC model (cnn.onnx behind a Transpose, as TensorFlow exports it)
// audited on the NHWC array, with int64 labels as numpy writes them, has
// the margins of cnn.onnx on the NCHW array with uint8 labels; uint8 images
// audit with --range 0,255.
func TestAuditArraysAsNumPyWritesThem(t *testing.T) {
	orttest.Require(t)
	m, err := onnxgrad.Load(models + "/cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nhwc := filepath.Join(dir, "cnn_nhwc.onnx")
	if err := onnxgrad.Save(nhwc, testmodels.NHWC(m)); err != nil {
		t.Fatal(err)
	}
	audit := func(model, images, labels string, extra ...string) []auditor.Record {
		t.Helper()
		out := filepath.Join(t.TempDir(), "audit")
		args := append([]string{"audit", model, "-q", "--threads", "1", "--out", out, "--images", images, "--labels", labels, "--refine"}, extra...)
		if _, stderr, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit status %d: %s", args, code, stderr)
		}
		return readMargins(t, out)
	}
	want := audit(models+"/cnn.onnx", models+"/cnn.x.npy", arrays+"/y_u8.npy")
	got := audit(nhwc, arrays+"/x_nhwc.npy", arrays+"/y.npy")
	if len(got) != 8 || len(want) != 8 {
		t.Fatalf("%d and %d records, want 8", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		// The same numbers in another order (see attack's TestClassifierNHWC).
		if r.Label != w.Label || r.Pred != w.Pred || !r.Success || math.Abs(r.Margin-w.Margin) > 1e-6*w.Margin ||
			math.Abs(r.MarginRefined-w.MarginRefined) > 1e-6*w.MarginRefined {
			t.Errorf("record %d: %+v NHWC, %+v NCHW", i, r, w)
		}
	}
	if recs := audit(models+"/cnn.onnx", arrays+"/x_u8.npy", arrays+"/y_u8.npy", "--range", "0,255"); len(recs) != 8 {
		t.Errorf("uint8 images: %d records, want 8", len(recs))
	}
}

// --certify-steps reaches the certifier and settings.json, and a resumed
// audit with other steps is refused as for any other setting: the mlp
// fixture's 4 images, labelled as it predicts them so that each is
// certified, get other lower bounds from 2 bisection steps than from the
// default 16, never above them (a coarser bisection stops sooner).
func TestAuditCertifySteps(t *testing.T) {
	orttest.Require(t)
	labels := filepath.Join(t.TempDir(), "y.npy")
	f, err := os.Create(labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteInts(f, &npy.IntArray{Shape: []int{4}, Data: []int{8, 9, 9, 8}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	audit := func(out string, code int, extra ...string) string {
		t.Helper()
		args := append([]string{"audit", models + "/mlp.onnx", "-q", "--threads", "1", "--out", out, "--n", "4",
			"--images", models + "/mlp.x.npy", "--labels", labels, "--certify"}, extra...)
		_, stderr, got := runCLI(t, args...)
		if got != code {
			t.Fatalf("%v: exit status %d, want %d: %s", extra, got, code, stderr)
		}
		return stderr
	}
	coarse, fine := filepath.Join(t.TempDir(), "coarse"), filepath.Join(t.TempDir(), "fine")
	audit(coarse, 0, "--certify-steps", "2")
	audit(fine, 0)
	settings, err := os.ReadFile(filepath.Join(coarse, auditor.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(settings), `"certify_steps": 2`) {
		t.Errorf("settings.json of --certify-steps 2:\n%s", settings)
	}
	c, d := readMargins(t, coarse), readMargins(t, fine)
	differ := 0
	for i := range c {
		if !c[i].Certified || !c[i].Correct || c[i].MarginLower > d[i].MarginLower {
			t.Errorf("image %d %s: certified %t, lower bound %v with 2 steps, %v with 16", c[i].Index, c[i].Norm, c[i].Certified, c[i].MarginLower, d[i].MarginLower)
		}
		if c[i].MarginLower != d[i].MarginLower {
			differ++
		}
	}
	if differ == 0 {
		t.Errorf("2 and 16 bisection steps gave the same %d lower bounds", len(c))
	}
	if stderr := audit(coarse, 1, "--certify-steps", "3"); !strings.Contains(stderr, "certify_steps: 2 before, 3 now") {
		t.Errorf("resumed with other steps: %s", stderr)
	}
	before, err := os.ReadFile(filepath.Join(coarse, auditor.MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	audit(coarse, 0, "--certify-steps", "2")
	if after, err := os.ReadFile(filepath.Join(coarse, auditor.MarginsFile)); err != nil || string(after) != string(before) {
		t.Errorf("resumed with the same steps, margins.csv changed (%v)", err)
	}
}

// With one DeepFool step, no overshoot and no retries, DeepFool flips none
// of cnn.onnx's images and FMN's search flips them all: --save-adversarial
// saves zeros and class −1 as DeepFool's points, and the refined points
// with the refined margins as their norms.
func TestAuditSavesRefinedAdversarial(t *testing.T) {
	orttest.Require(t)
	out := filepath.Join(t.TempDir(), "audit")
	_, stderr, code := runCLI(t, "audit", models+"/cnn.onnx", "-q", "--threads", "1", "--out", out, "--images", models+"/cnn.x.npy",
		"--labels", arrays+"/y.npy", "--refine", "--max-iter", "1", "--overshoot", "0", "--retries", "0", "--save-adversarial")
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	recs := readMargins(t, out)
	for _, norm := range []auditor.Norm{auditor.L2, auditor.LInf} {
		df, err := auditor.ReadAdversarial(out, "cnn.onnx", auditor.Test, norm, false)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := auditor.ReadAdversarial(out, "cnn.onnx", auditor.Test, norm, true)
		if err != nil {
			t.Fatal(err)
		}
		d := len(ref.Delta) / len(ref.Index)
		i := 0
		for _, r := range recs {
			if r.Norm != norm {
				continue
			}
			if r.Success || !r.HasRefinedMargin() {
				t.Fatalf("image %d %s: DeepFool succeeded (%t) or FMN found no margin (%v): the test needs DeepFool's failures that FMN flips", r.Index, norm, r.Success, r.MarginRefined)
			}
			if df.AdvPred[i] != -1 || slices.ContainsFunc(df.Delta[i*d:(i+1)*d], func(v float32) bool { return v != 0 }) {
				t.Errorf("image %d %s: DeepFool failed, but its saved point has class %d or a perturbation", r.Index, norm, df.AdvPred[i])
			}
			delta := ref.Delta[i*d : (i+1)*d]
			size := 0.0 // ‖δ‖ in the norm
			for _, v := range delta {
				if norm == auditor.LInf {
					size = math.Max(size, math.Abs(float64(v)))
				} else {
					size = math.Hypot(size, float64(v))
				}
			}
			if ref.AdvPred[i] < 0 || ref.AdvPred[i] == r.Pred || math.Abs(size-r.MarginRefined) > 1e-5*math.Max(1, r.MarginRefined) {
				t.Errorf("image %d %s: refined point of class %d (clean %d), ‖δ‖ = %v; margin_refined %v", r.Index, norm, ref.AdvPred[i], r.Pred, size, r.MarginRefined)
			}
			i++
		}
	}
}

// readMargins reads the margins.csv of the audit folder out.
func readMargins(t *testing.T, out string) []auditor.Record {
	t.Helper()
	f, err := os.Open(filepath.Join(out, auditor.MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := auditor.ReadRecords(f, auditor.MarginsFile)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A model with two outputs, probabilities first and logits second (as
// some exporters write them): audited on its first output by default (as
// log-probabilities) and on --output logits, it gives the same margins;
// an output it lacks is refused with the ones it has.
func TestAuditOutputFlag(t *testing.T) {
	orttest.Require(t)
	m, err := onnxgrad.Load(models + "/cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	g := m.GetGraph()
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("softmax"), OpType: proto.String("Softmax"), Input: []string{"logits"}, Output: []string{"probs"}})
	probs := proto.Clone(g.GetOutput()[0]).(*onnxpb.ValueInfoProto)
	probs.Name = proto.String("probs")
	g.Output = append([]*onnxpb.ValueInfoProto{probs}, g.GetOutput()...)
	model := filepath.Join(t.TempDir(), "two_outputs.onnx")
	if err := onnxgrad.Save(model, m); err != nil {
		t.Fatal(err)
	}
	audit := func(extra ...string) (recs []auditor.Record, stderr string, code int) {
		out := filepath.Join(t.TempDir(), "audit")
		args := append([]string{"audit", model, "--threads", "1", "--out", out, "--images", models + "/cnn.x.npy", "--labels", arrays + "/y.npy"}, extra...)
		_, stderr, code = runCLI(t, args...)
		if code == 0 {
			recs = readMargins(t, out)
		}
		return recs, stderr, code
	}
	probsRecs, stderr, code := audit()
	if code != 0 || !strings.Contains(stderr, "Softmax replaced by LogSoftmax") {
		t.Fatalf("default output: exit %d, stderr:\n%s", code, stderr)
	}
	logitRecs, stderr, code := audit("--output", "logits")
	if code != 0 || !strings.Contains(stderr, "scores: logits") {
		t.Fatalf("--output logits: exit %d, stderr:\n%s", code, stderr)
	}
	for i, r := range probsRecs {
		if w := logitRecs[i]; r.Pred != w.Pred || math.Abs(r.Margin-w.Margin) > 1e-4*w.Margin {
			t.Errorf("record %d: %+v on the probabilities, %+v on the logits", i, r, w)
		}
	}
	if _, stderr, code := audit("--output", "nope"); code != 1 || !strings.Contains(stderr, `the model has no output "nope"; its outputs are "probs", "logits"`) {
		t.Errorf("--output nope: exit %d, stderr:\n%s", code, stderr)
	}
}
