package attack_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/option"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// exampleMLP loads the small MLP of testdata/models and its four images,
// [4, 1, 28, 28] in (0, 1).
func exampleMLP() (*attack.Classifier, []float32) {
	m, err := onnxgrad.Load("../../testdata/models/mlp.onnx")
	if err != nil {
		log.Fatal(err)
	}
	x, err := npy.ReadFile("../../testdata/models/mlp.x.npy")
	if err != nil {
		log.Fatal(err)
	}
	c, err := attack.NewClassifier(m, attack.Options{Name: "mlp.onnx", Threads: 2})
	if err != nil {
		log.Fatal(err)
	}
	return c, x.Data
}

// Measure how far each of four images lies from the decision boundary of a
// small MLP, in L2.
func ExampleDeepFool() {
	c, x := exampleMLP()
	defer c.Close()

	opt := attack.DefaultDeepFoolOptions(attack.L2)
	res, err := attack.DeepFool(context.Background(), c, x, nil, opt)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range res {
		fmt.Printf("image %d: class %d → %d after %d steps, margin %.3f\n", i, r.Pred, r.AdvPred, r.Iterations, r.Margin)
	}
	// Output:
	// image 0: class 8 → 9 after 1 steps, margin 0.092
	// image 1: class 9 → 8 after 1 steps, margin 0.186
	// image 2: class 9 → 8 after 1 steps, margin 0.423
	// image 3: class 8 → 9 after 1 steps, margin 0.166
}

// Check PGD's parameters before any model is loaded: the error names the
// option by its settings.json name and says what it takes.
func ExamplePGDParams_Validate() {
	p := attack.DefaultPGDParams()
	fmt.Println(p.Steps, p.StepFor(0.1))

	p.Steps = 0
	err := p.Validate()
	var oe *option.Error
	fmt.Println(errors.Is(err, attack.ErrOptions), errors.As(err, &oe) && oe.Field == "steps")
	fmt.Println(err)
	// Output:
	// 20 0.0125
	// true true
	// attack: bad options: steps 0: want an integer ≥ 1
}

// Tighten DeepFool's L∞ margins of four images with 25 steps of FMN; an
// image nothing flips would be reported as censored.
func ExampleFMN_Refine() {
	c, x := exampleMLP()
	defer c.Close()

	opt := attack.DefaultDeepFoolOptions(attack.LInf)
	opt.KeepPerturbation = true // FMN starts from DeepFool's points
	start, err := attack.DeepFool(context.Background(), c, x, nil, opt)
	if err != nil {
		log.Fatal(err)
	}
	fmn, err := attack.NewFMN(c, attack.DefaultFMNOptions(attack.LInf))
	if err != nil {
		log.Fatal(err)
	}
	res, err := fmn.Refine(context.Background(), x, start)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range res {
		if r.Censored {
			fmt.Printf("image %d: censored at %.3f\n", i, r.CensoredAt)
			continue
		}
		fmt.Printf("image %d: class %d → %d, margin %.5f (DeepFool %.5f, from %v)\n", i, r.Pred, r.AdvPred, r.Margin, start[i].Margin, r.Start)
	}
	// Output:
	// image 0: class 8 → 9, margin 0.00370 (DeepFool 0.00421, from deepfool)
	// image 1: class 9 → 8, margin 0.00819 (DeepFool 0.00842, from deepfool)
	// image 2: class 9 → 8, margin 0.01834 (DeepFool 0.01865, from deepfool)
	// image 3: class 8 → 9, margin 0.00728 (DeepFool 0.00751, from deepfool)
}
