package onnxgrad_test

import (
	"fmt"
	"log"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
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

// Make the batch of a model exported with a fixed batch of one image (as
// torch.onnx.export writes it without dynamic_axes) symbolic, so that it
// runs on any number of images.
func ExampleSymbolicBatch() {
	dim := func(v int64) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	input := &onnxpb.ValueInfoProto{Name: proto.String("image"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		Shape:    &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{dim(1), dim(1), dim(4), dim(4)}},
	}}}}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:   proto.String("fixed"),
			Input:  []*onnxpb.ValueInfoProto{input},
			Output: []*onnxpb.ValueInfoProto{{Name: proto.String("logits")}},
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("shape"), Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{1, 16}},
				onnxgrad.NewTensorFloat32("W", []int64{16, 3}, make([]float32, 48)),
			},
			Node: []*onnxpb.NodeProto{
				{Name: proto.String("/Reshape"), OpType: proto.String("Reshape"), Input: []string{"image", "shape"}, Output: []string{"flat"}},
				{Name: proto.String("/fc/MatMul"), OpType: proto.String("MatMul"), Input: []string{"flat", "W"}, Output: []string{"logits"}},
			},
		},
	}
	res, err := onnxgrad.SymbolicBatch(m, onnxgrad.BatchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range res.Changes {
		fmt.Println(c)
	}
	// Output:
	// input "image": batch dimension 1 → N
	// node "/Reshape" (Reshape): shape [1 16] → [0 16] (0 copies the batch size)
}
