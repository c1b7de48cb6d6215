package report_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/report"
)

// A report of one small audit: four checkpoints of eight test images in L2,
// stored as an audit stores them.
func ExampleWrite() {
	root, err := os.MkdirTemp("", "report")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	auditDir := filepath.Join(root, "audit")
	store, err := auditor.OpenStore(auditDir, &auditor.Settings{
		Data: "mnist", Splits: []auditor.Split{auditor.Test}, N: 8, Sample: "first", Range: [2]float64{0, 1},
		Norms: []auditor.Norm{auditor.L2}, DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10},
	})
	if err != nil {
		log.Fatal(err)
	}
	for epoch := range 4 {
		name := fmt.Sprintf("epoch-%03d.onnx", epoch)
		part := &auditor.Part{Checkpoint: name, Epoch: epoch}
		for i := range 8 {
			// Images 0…epoch+3 are right; margins grow with the epoch
			// and are smaller for the misclassified images.
			correct := i <= epoch+3
			margin := 0.3*float64(epoch+1) + 0.05*float64(i)
			pred := 3
			if !correct {
				pred, margin = 5, margin/4
			}
			part.Records = append(part.Records, auditor.Record{
				Checkpoint: name, Epoch: epoch, Split: auditor.Test, Index: i, Label: 3, Pred: pred,
				Correct: correct, Norm: auditor.L2, Margin: margin, MarginRefined: math.NaN(),
				Iterations: 3, Success: true,
			})
		}
		if err := store.Commit(part); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := store.WriteReport(); err != nil {
		log.Fatal(err)
	}

	out := filepath.Join(root, "report")
	obs, err := report.Write(context.Background(), []report.Audit{{Label: "standard", Dir: auditDir}}, out, report.Options{})
	if err != nil {
		log.Fatal(err)
	}
	t := obs.Trend[0]
	fmt.Printf("trend: %.3g → %.3g, ρ = %.2f, p = %.3f (%s)\n", t.MeanFirst, t.MeanLast, t.Rho, t.P, t.Method)
	last := obs.IncorrectRatio[len(obs.IncorrectRatio)-1]
	fmt.Printf("epoch %d: misclassified/correct = %.3f, p = %.3f\n", last.Epoch, last.Ratio, last.P)
	for _, f := range obs.Figures {
		fmt.Println(f.PNG)
	}
	// By hand: at epoch 1 the mean margin is (5·0.6 + 0.05·10 + 0.675)/8 =
	// 0.522, at epoch 3 (7·1.2 + 0.05·21 + 0.3875)/8 = 1.23; three rising
	// means reach the smallest exact p, 2/3!. At epoch 3 the misclassified
	// image has margin 0.3875 against a mean of 1.35, and U = 0 of 7 pairs:
	// z = (3.5 − 0.5)/√(7/12·9) = 1.31, p = 0.190.

	// Output:
	// trend: 0.522 → 1.23, ρ = 1.00, p = 0.333 (exact)
	// epoch 3: misclassified/correct = 0.287, p = 0.190
	// figures/margin-standard-l2.png
	// figures/groups-standard-l2.png
	// figures/hist-standard-test-l2.png
	// figures/sankey-standard-test.png
}
