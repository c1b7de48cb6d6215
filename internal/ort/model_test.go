package ort_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

var update = flag.Bool("update", false, "rewrite the models in testdata/")

// The element types of the test models, as ONNX numbers them.
const (
	onnxFloat  = onnxpb.TensorProto_FLOAT
	onnxDouble = onnxpb.TensorProto_DOUBLE
	onnxInt64  = onnxpb.TensorProto_INT64
)

// affineModel returns a serialized ONNX model (opset 13) computing
// Y = X*2 + 1 for X of shape [N, 3] and the given element type, with the
// constants as initializers. With sum, it has a second output S =
// ReduceSum(Y) declared 0-d; with unknownRank, the outputs declare no shape.
func affineModel(tb testing.TB, elem onnxpb.TensorProto_DataType, sum, unknownRank bool) []byte {
	tb.Helper()
	tensorType := func(dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.TypeProto {
		t := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem))}
		if !unknownRank || len(dims) > 0 {
			t.Shape = &onnxpb.TensorShapeProto{Dim: dims}
		}
		return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: t}}
	}
	batchBy3 := []*onnxpb.TensorShapeProto_Dimension{
		{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
		{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 3}},
	}
	scalar := func(name string, v float64) *onnxpb.TensorProto {
		t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(elem))}
		switch elem {
		case onnxFloat:
			t.FloatData = []float32{float32(v)}
		case onnxDouble:
			t.DoubleData = []float64{v}
		case onnxInt64:
			t.Int64Data = []int64{int64(v)}
		default:
			tb.Fatalf("affineModel: element type %v", elem)
		}
		return t
	}
	graph := &onnxpb.GraphProto{
		Name: proto.String("affine"),
		Node: []*onnxpb.NodeProto{
			{Name: proto.String("mul"), OpType: proto.String("Mul"), Input: []string{"X", "two"}, Output: []string{"T"}},
			{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"T", "one"}, Output: []string{"Y"}},
		},
		Initializer: []*onnxpb.TensorProto{scalar("two", 2), scalar("one", 1)},
		Input:       []*onnxpb.ValueInfoProto{{Name: proto.String("X"), Type: tensorType(batchBy3...)}},
		Output:      []*onnxpb.ValueInfoProto{{Name: proto.String("Y"), Type: tensorType(batchBy3...)}},
	}
	if unknownRank {
		graph.Output[0].Type = tensorType()
	}
	if sum {
		graph.Node = append(graph.Node, &onnxpb.NodeProto{
			Name: proto.String("sum"), OpType: proto.String("ReduceSum"), Input: []string{"Y"}, Output: []string{"S"},
			Attribute: []*onnxpb.AttributeProto{{
				Name: proto.String("keepdims"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0),
			}},
		})
		graph.Output = append(graph.Output, &onnxpb.ValueInfoProto{Name: proto.String("S"), Type: tensorType()})
	}
	model := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("marginaudit internal/ort tests"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:        graph,
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(model)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// affine is the float32 reference: Y = 2X + 1.
func affine(x []float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = 2*v + 1
	}
	return y
}

// TestTestdataModels checks that testdata/affine.onnx, which the examples
// load, is the float32 affineModel; -update rewrites it.
func TestTestdataModels(t *testing.T) {
	want := affineModel(t, onnxFloat, false, false)
	path := filepath.Join("testdata", "affine.onnx")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from affineModel; run go test -update", path)
	}
}
