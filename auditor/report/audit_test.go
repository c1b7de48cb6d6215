package report_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/report"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// TestReportOfRealAudit audits the MLP fixture, saved as three checkpoints,
// on its four images, two labelled as the model predicts them and two not,
// and reports it: the audit writes confidence.csv, so every detection
// entry has its max-softmax baseline beside the margin's AUROC.
func TestReportOfRealAudit(t *testing.T) {
	orttest.Require(t)
	const fixture = "../../testdata/models/mlp"
	dir := t.TempDir()
	ckpts := filepath.Join(dir, "checkpoints")
	if err := os.Mkdir(ckpts, 0o755); err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile(fixture + ".onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"epoch-000.onnx", "epoch-001.onnx", "epoch-002.onnx"} {
		if err := os.WriteFile(filepath.Join(ckpts, name), model, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x, err := npy.ReadFile(fixture + ".x.npy")
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgrad.Load(fixture + ".onnx")
	if err != nil {
		t.Fatal(err)
	}
	clf, err := attack.NewClassifier(m, attack.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	labels, err := clf.Predict(x.Data, 4)
	clf.Close()
	if err != nil {
		t.Fatal(err)
	}
	labels[2], labels[3] = (labels[2]+1)%10, (labels[3]+1)%10

	cfg := auditor.Config{
		Checkpoints: []string{ckpts},
		Out:         filepath.Join(dir, "audit"),
		Settings: auditor.Settings{Data: "fixture", Splits: []auditor.Split{auditor.Test}, N: 4, Sample: "first", Seed: 1,
			Norms: []auditor.Norm{auditor.L2, auditor.LInf}, DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 2}},
		Data: map[auditor.Split]*auditor.Images{auditor.Test: {
			X: x.Data, Labels: labels, Index: []int{0, 1, 2, 3}, Shape: []int64{1, 28, 28}}},
		Threads: 1,
	}
	if _, err := auditor.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	obs, err := report.Write(context.Background(), []report.Audit{{Label: "standard", Dir: cfg.Out}}, filepath.Join(dir, "report"), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !obs.Audits[0].Confidence {
		t.Error("the report found no confidence.csv")
	}
	if len(obs.Detection) != 3*2 {
		t.Fatalf("%d detection entries, want one per epoch and norm", len(obs.Detection))
	}
	for _, d := range obs.Detection {
		if d.NCorrect != 2 || d.NIncorrect != 2 {
			t.Errorf("epoch %d %s: %d correct, %d misclassified; want 2 and 2", d.Epoch, d.Norm, d.NCorrect, d.NIncorrect)
		}
		// With 2 × 2 images an AUROC is a multiple of 1/8 (ties count ½).
		for what, v := range map[string]float64{"margin": float64(d.AUROCMargin), "max-softmax": float64(d.AUROCMaxSoftmax)} {
			if !(v >= 0 && v <= 1) || v*8 != math.Round(v*8) {
				t.Errorf("epoch %d %s: %s AUROC %v, want a multiple of 1/8 in [0, 1]", d.Epoch, d.Norm, what, v)
			}
		}
	}
	if notes := strings.Join(obs.Notes, "\n"); strings.Contains(notes, auditor.ConfidenceFile) {
		t.Errorf("the notes mention %s: %s", auditor.ConfidenceFile, notes)
	}
	if text := obs.Text(); strings.Count(text, "max-softmax baseline") != 2 || strings.Count(text, "on the same images") != 2 {
		t.Errorf("the text does not state the baseline:\n%s", text)
	}
}
