package onnxgrad_test

import (
	"fmt"
	"log"

	"github.com/marginaudit/marginaudit/onnxgrad"
)

// Build a model that returns, beside the logits, the per-sample Jacobian of
// all ten class scores with respect to the input image, from one forward
// pass.
func ExampleBuild() {
	m, err := onnxgrad.Load("../testdata/models/cnn.onnx")
	if err != nil {
		log.Fatal(err)
	}
	res, err := onnxgrad.Build(m, onnxgrad.Options{Mode: onnxgrad.Jacobian, File: "cnn.onnx"})
	if err != nil {
		log.Fatal(err)
	}
	for _, out := range res.Model.GetGraph().GetOutput() {
		fmt.Println(out.GetName())
	}
	fmt.Println("opset", onnxgrad.Opset(res.Model))
	// Output:
	// logits
	// input_jacobian
	// opset 13
}

// Build a training graph: gradients of the logits' cotangent with respect
// to every weight.
func ExampleBuild_params() {
	m, err := onnxgrad.Load("../testdata/models/mlp.onnx")
	if err != nil {
		log.Fatal(err)
	}
	res, err := onnxgrad.Build(m, onnxgrad.Options{Mode: onnxgrad.Params})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("seed input:", res.Seed)
	for i, w := range res.WRT {
		fmt.Println(w, "→", res.Grads[i])
	}
	// Output:
	// seed input: logits_grad
	// 1.weight → 1.weight_grad
	// 1.bias → 1.bias_grad
	// 3.weight → 3.weight_grad
	// 3.bias → 3.bias_grad
	// 5.weight → 5.weight_grad
	// 5.bias → 5.bias_grad
}

// Inspect tells whether onnxgrad can differentiate a model, and why not.
func ExampleInspect() {
	m, err := onnxgrad.Load("../testdata/models/unsupported.onnx")
	if err != nil {
		log.Fatal(err)
	}
	info, err := onnxgrad.Inspect(m, "unsupported.onnx")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Inputs[0].Name, info.Inputs[0].Shape, "→", info.Outputs[0].Name, info.Outputs[0].Shape)
	for _, u := range info.Unsupported {
		fmt.Println(u)
	}
	// Output:
	// input [N,1,8,8] → logits [N,10]
	// onnxgrad: unsupported.onnx: unsupported op "CumSum" in node "/CumSum": no gradient rule
}
