package report_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/report"
)

// Calibrate against calibration errors computed by hand.
func TestCalibrate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		conf     []float64
		correct  []bool
		bins     int
		ece, mce float64
		counts   map[int]int // non-empty bins
	}{
		// 15 bins of width 1/15: 0.95 → bin 14, 0.9 → 13, 0.65 and 0.62 →
		// 9, 0.3 → 4. Gaps |acc − conf|: 0.05, 0.9, |1 − 0.635| = 0.365,
		// 0.3; ECE = (0.05 + 0.9 + 2·0.365 + 0.3)/5 = 0.396.
		{"five images", []float64{0.95, 0.9, 0.65, 0.62, 0.3}, []bool{true, false, true, true, false}, 15,
			0.396, 0.9, map[int]int{14: 1, 13: 1, 9: 2, 4: 1}},
		// Two bins: (0, ½] holds 0 and ½ (acc ½, conf ¼), (½, 1] holds 1
		// (acc 1, conf 1): ECE = ⅔·¼.
		{"edges", []float64{0, 0.5, 1}, []bool{false, true, true}, 2, 1.0 / 6, 0.25, map[int]int{0: 2, 1: 1}},
		{"perfect", []float64{1, 1, 1}, []bool{true, true, true}, 15, 0, 0, map[int]int{14: 3}},
		{"empty", nil, nil, 15, math.NaN(), math.NaN(), map[int]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := report.Calibrate(tc.conf, tc.correct, tc.bins)
			if !close(r.ECE, tc.ece, 1e-12) || !close(r.MCE, tc.mce, 1e-12) {
				t.Errorf("ECE %v, MCE %v; want %v, %v", r.ECE, r.MCE, tc.ece, tc.mce)
			}
			if len(r.Bins) != tc.bins {
				t.Fatalf("%d bins, want %d", len(r.Bins), tc.bins)
			}
			for b, bin := range r.Bins {
				if bin.N != tc.counts[b] {
					t.Errorf("bin %d (%v, %v]: %d images, want %d", b, bin.Lo, bin.Hi, bin.N, tc.counts[b])
				}
				if empty := math.IsNaN(float64(bin.Accuracy)); empty != (bin.N == 0) {
					t.Errorf("bin %d: accuracy %v with %d images", b, bin.Accuracy, bin.N)
				}
			}
		})
	}
}

// The report's calibration and margin–confidence correlations of a tiny
// audit, checked against numbers computed by hand.
func TestCalibrationOfAudit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tiny")
	settings := &auditor.Settings{
		Data: "mnist", Splits: []auditor.Split{auditor.Test}, N: 5, Sample: "first", Seed: 1, Range: [2]float64{0, 1},
		Norms:          []auditor.Norm{auditor.L2},
		DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10},
	}
	store, err := auditor.OpenStore(dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	// The five images of TestCalibrate's first case, with margins whose
	// ranks are 5, 1, 4, 3, 2.
	conf := []float64{0.95, 0.9, 0.65, 0.62, 0.3}
	correct := []bool{true, false, true, true, false}
	margin := []float64{2, 0.1, 1, 0.8, 0.2}
	name := "epoch-001.onnx"
	part := &auditor.Part{Checkpoint: name, Epoch: 1}
	for i := range conf {
		pred := 3
		if !correct[i] {
			pred = 4
		}
		part.Records = append(part.Records, auditor.Record{Checkpoint: name, Epoch: 1, Split: auditor.Test, Index: i, Label: 3, Pred: pred,
			Correct: correct[i], Norm: auditor.L2, Margin: margin[i], MarginRefined: math.NaN(), Iterations: 2, Success: true})
		part.Confidence = append(part.Confidence, auditor.Confidence{Checkpoint: name, Epoch: 1, Split: auditor.Test, Index: i, MaxSoftmax: conf[i]})
	}
	if err := store.Commit(part); err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteReport(); err != nil {
		t.Fatal(err)
	}
	obs, err := report.Write(context.Background(), []report.Audit{{Label: "tiny", Dir: dir}}, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Calibration) != 1 || len(obs.MarginConfidence) != 1 {
		t.Fatalf("%d calibrations and %d correlations, want 1 each", len(obs.Calibration), len(obs.MarginConfidence))
	}
	c := obs.Calibration[0]
	// Accuracy 3/5, mean confidence 3.42/5.
	if c.N != 5 || !close(float64(c.ECE), 0.396, 1e-12) || !close(float64(c.MCE), 0.9, 1e-12) ||
		!close(float64(c.Accuracy), 0.6, 1e-12) || !close(float64(c.MeanConfidence), 0.684, 1e-12) || len(c.Bins) != report.CalibrationBins {
		t.Errorf("calibration %+v, want n 5, ECE 0.396, MCE 0.9, accuracy 0.6, mean confidence 0.684, %d bins", c, report.CalibrationBins)
	}
	// Ranks of the margin 5, 1, 4, 3, 2; of the confidence 5, 4, 3, 2, 1
	// (Σd² = 12, ρ = 1 − 6·12/(5·24) = 0.4); of the over-confidence
	// conf − correct = −0.05, 0.9, −0.35, −0.38, 0.3: 3, 5, 2, 1, 4
	// (Σd² = 32, ρ = 1 − 6·32/120 = −0.6).
	// The two misclassified images: margins 0.1 and 0.2, confidences 0.9
	// and 0.3, ρ = −1 (exact p = 1: both of the 2! orders reach |ρ| = 1).
	m := obs.MarginConfidence[0]
	if m.N != 5 || !close(float64(m.RhoConfidence), 0.4, 1e-12) || !close(float64(m.RhoOverconfidence), -0.6, 1e-12) || m.Method != report.Exact ||
		m.NMisclassified != 2 || !close(float64(m.RhoMisclassified), -1, 1e-12) || !close(float64(m.PMisclassified), 1, 1e-12) {
		t.Errorf("margin–confidence %+v, want n 5, ρ 0.4 and −0.6, exact p; 2 misclassified with ρ −1, p 1", m)
	}
	var figs int
	for _, f := range obs.Figures {
		if f.Kind == report.FigCalibration {
			figs++
		}
	}
	if figs != 2 {
		t.Errorf("%d calibration figures, want 2 (reliability diagrams, calibration errors)", figs)
	}
	if text := obs.Text(); !strings.Contains(text, "tiny, test split: ECE 0.396, MCE 0.900 at epoch 1") {
		t.Errorf("the text does not state the calibration:\n%s", text)
	}
}

func ExampleCalibrate() {
	conf := []float64{0.95, 0.9, 0.65, 0.62, 0.3}
	correct := []bool{true, false, true, true, false}
	r := report.Calibrate(conf, correct, report.CalibrationBins)
	fmt.Printf("ECE %.3f, MCE %.3f over %d images\n", r.ECE, r.MCE, r.N)
	for _, b := range r.Bins {
		if b.N > 0 {
			fmt.Printf("(%.3f, %.3f]: %d images, accuracy %.2f, confidence %.3f\n", b.Lo, b.Hi, b.N, b.Accuracy, b.Confidence)
		}
	}
	// Output:
	// ECE 0.396, MCE 0.900 over 5 images
	// (0.267, 0.333]: 1 images, accuracy 0.00, confidence 0.300
	// (0.600, 0.667]: 2 images, accuracy 1.00, confidence 0.635
	// (0.867, 0.933]: 1 images, accuracy 0.00, confidence 0.900
	// (0.933, 1.000]: 1 images, accuracy 1.00, confidence 0.950
}
