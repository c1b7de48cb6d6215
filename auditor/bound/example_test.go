package bound_test

import (
	"context"
	"fmt"
	"log"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// The bracket of one image's L2 margin: DeepFool's upper bound and the
// certified lower bound, bisected below it.
func Example() {
	m, err := onnxgrad.Load("../../testdata/models/mlp.onnx")
	if err != nil {
		log.Fatal(err)
	}
	c, err := attack.NewClassifier(m, attack.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ct, err := bound.New(c, bound.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ct.Close()

	x := make([]float32, c.SampleSize()) // a blank image
	res, err := attack.DeepFool(context.Background(), c, x, nil, attack.DefaultDeepFoolOptions(attack.L2))
	if err != nil {
		log.Fatal(err)
	}
	lower, err := ct.Certify(context.Background(), x, []int{res[0].Pred}, attack.L2, []float64{res[0].Margin})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lower[0] > 0, lower[0] <= res[0].Margin)
	// Output: true true
}
