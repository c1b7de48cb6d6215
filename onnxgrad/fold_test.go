package onnxgrad

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

func node(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
}

func int64s(name string, v ...int64) *onnxpb.TensorProto {
	return newTensorInt64(name, []int64{int64(len(v))}, v)
}

func scalarInt64(name string, v int64) *onnxpb.TensorProto {
	return newTensorInt64(name, nil, []int64{v})
}

// foldModel is a graph over the input x of shape xShape with the given
// initializers and nodes, at opset 13.
func foldModel(xShape Shape, inits []*onnxpb.TensorProto, nodes ...*onnxpb.NodeProto) *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: proto.String("fold"), Initializer: inits, Node: nodes,
		Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, xShape)}}
	last := nodes[len(nodes)-1].GetOutput()[0]
	g.Output = []*onnxpb.ValueInfoProto{tensorValueInfo(last, onnxpb.TensorProto_UNDEFINED, nil)}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
}

// TestFoldShapeValues checks the tracked values (and element types) that
// shape inference computes for integer and boolean shape arithmetic over
// x of shape [N, 16, 4]: "s" is Shape(x). A symbol is a dimension, hence
// never negative; "?" is a value inference cannot know.
func TestFoldShapeValues(t *testing.T) {
	shape := node("Shape", []string{"x"}, "s")
	bools := func(name string, v ...bool) *onnxpb.TensorProto {
		return newTensorBool(name, []int64{int64(len(v))}, v)
	}
	for _, tc := range []struct {
		name  string
		inits []*onnxpb.TensorProto
		nodes []*onnxpb.NodeProto
		elem  onnxpb.TensorProto_DataType
		want  string
	}{
		{"Equal", []*onnxpb.TensorProto{int64s("c", -1, 16, 5)}, []*onnxpb.NodeProto{shape, node("Equal", []string{"s", "c"}, "y")}, onnxpb.TensorProto_BOOL, "[0,1,0]"},
		{"Equal symbol against a size", []*onnxpb.TensorProto{int64s("c", 2)}, []*onnxpb.NodeProto{shape, node("Equal", []string{"s", "c"}, "y")}, onnxpb.TensorProto_BOOL, "[?,0,0]"},
		{"Greater", []*onnxpb.TensorProto{int64s("c", -1, 20, 3)}, []*onnxpb.NodeProto{shape, node("Greater", []string{"s", "c"}, "y")}, onnxpb.TensorProto_BOOL, "[1,0,1]"},
		{"Less", []*onnxpb.TensorProto{int64s("c", -1, 20, 3)}, []*onnxpb.NodeProto{shape, node("Less", []string{"s", "c"}, "y")}, onnxpb.TensorProto_BOOL, "[0,1,0]"},
		{"GreaterOrEqual", []*onnxpb.TensorProto{int64s("c", 16)}, []*onnxpb.NodeProto{shape, node("GreaterOrEqual", []string{"s", "c"}, "y")}, onnxpb.TensorProto_BOOL, "[?,1,0]"},
		{"Not Or And", []*onnxpb.TensorProto{bools("a", true, false, false), bools("b", true, true, false)}, []*onnxpb.NodeProto{
			node("Not", []string{"a"}, "na"), node("Or", []string{"na", "b"}, "o"), node("And", []string{"o", "b"}, "y")}, onnxpb.TensorProto_BOOL, "[1,1,0]"},
		{"Where", []*onnxpb.TensorProto{bools("c", true, false, true), int64s("o", 7, 8, 9)}, []*onnxpb.NodeProto{shape, node("Where", []string{"c", "s", "o"}, "y")}, onnxpb.TensorProto_INT64, "[N,8,4]"},
		{"Range", []*onnxpb.TensorProto{scalarInt64("a", 0), scalarInt64("b", 5), scalarInt64("d", 2)}, []*onnxpb.NodeProto{node("Range", []string{"a", "b", "d"}, "y")}, onnxpb.TensorProto_INT64, "[0,2,4]"},
		{"Range down", []*onnxpb.TensorProto{scalarInt64("a", 10), scalarInt64("b", 4), scalarInt64("d", -2)}, []*onnxpb.NodeProto{node("Range", []string{"a", "b", "d"}, "y")}, onnxpb.TensorProto_INT64, "[10,8,6]"},
		{"Range empty", []*onnxpb.TensorProto{scalarInt64("a", 3), scalarInt64("b", 3), scalarInt64("d", 1)}, []*onnxpb.NodeProto{node("Range", []string{"a", "b", "d"}, "y")}, onnxpb.TensorProto_INT64, "[]"},
		{"Tile", []*onnxpb.TensorProto{int64s("c", 1, 2), int64s("r", 3)}, []*onnxpb.NodeProto{node("Tile", []string{"c", "r"}, "y")}, onnxpb.TensorProto_INT64, "[1,2,1,2,1,2]"},
		{"Expand", []*onnxpb.TensorProto{int64s("c", 5), int64s("t", 3)}, []*onnxpb.NodeProto{node("Expand", []string{"c", "t"}, "y")}, onnxpb.TensorProto_INT64, "[5,5,5]"},
		{"Mod", []*onnxpb.TensorProto{int64s("a", -7, 7), int64s("b", 3)}, []*onnxpb.NodeProto{node("Mod", []string{"a", "b"}, "y")}, onnxpb.TensorProto_INT64, "[2,1]"},
		{"Mod fmod", []*onnxpb.TensorProto{int64s("a", -7, 7), int64s("b", 3)}, []*onnxpb.NodeProto{node("Mod", []string{"a", "b"}, "y", attrInt("fmod", 1))}, onnxpb.TensorProto_INT64, "[-1,1]"},
		{"Neg", nil, []*onnxpb.NodeProto{shape, node("Neg", []string{"s"}, "y")}, onnxpb.TensorProto_INT64, "[?,-16,-4]"},
		{"Abs", nil, []*onnxpb.NodeProto{shape, node("Neg", []string{"s"}, "n"), node("Abs", []string{"n"}, "y")}, onnxpb.TensorProto_INT64, "[?,16,4]"},
		{"Abs of a dimension", nil, []*onnxpb.NodeProto{shape, node("Abs", []string{"s"}, "y")}, onnxpb.TensorProto_INT64, "[N,16,4]"},
		{"Sign", []*onnxpb.TensorProto{int64s("a", -3, 0, 2)}, []*onnxpb.NodeProto{node("Sign", []string{"a"}, "y")}, onnxpb.TensorProto_INT64, "[-1,0,1]"},
		{"Max of three", []*onnxpb.TensorProto{int64s("a", 1, 5), int64s("b", 3, 2), int64s("c", 4)}, []*onnxpb.NodeProto{node("Max", []string{"a", "b", "c"}, "y")}, onnxpb.TensorProto_INT64, "[4,5]"},
		{"CastLike", []*onnxpb.TensorProto{int64s("a", 3, 4), {Name: proto.String("i32"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), Dims: []int64{1}, Int32Data: []int32{0}}},
			[]*onnxpb.NodeProto{node("CastLike", []string{"a", "i32"}, "y")}, onnxpb.TensorProto_INT32, "[3,4]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gr := newGraph(foldModel(Shape{{Param: "N"}, known(16), known(4)}, tc.inits, tc.nodes...), "")
			gr.infer()
			for n, err := range gr.inferErr {
				t.Fatalf("node %s: %v", n.GetName(), err)
			}
			y := gr.info["y"]
			if y == nil {
				t.Fatal("nothing inferred for y")
			}
			if y.elem != tc.elem || Shape(y.value).String() != tc.want || !y.hasShape || len(y.shape) != 1 || y.shape[0] != known(int64(len(y.value))) {
				t.Errorf("y = %v with values %v; want %v[%d] with values %s", y, Shape(y.value), tc.elem, len(y.value), tc.want)
			}
		})
	}
}

// classTokenModel is the class-token prepending of a ViT as PyTorch 1.13
// exports it at opset 13 with a dynamic batch (cls.expand(n, -1, -1),
// torch.cat): Shape → Gather → Unsqueeze → Concat([n, -1, -1]) → Reshape →
// Shape → ConstantOfShape(1) → Mul(−1) → Equal → Where → Expand, then
// Concat with the patches and a sum over the tokens, so that the output y
// [batch, 4] is a classifier's. The patches x [batch, 16, 4] and the
// class token cls [1, 1, 4] are graph inputs.
func classTokenModel(batch Dim) *onnxpb.ModelProto {
	one := newTensorInt64("", []int64{1}, []int64{1})
	m := foldModel(Shape{batch, known(16), known(4)},
		[]*onnxpb.TensorProto{scalarInt64("zero", 0), int64s("axis0", 0), int64s("minus1", -1), scalarInt64("neg", -1), int64s("tokens", 1)},
		node("Shape", []string{"x"}, "shape"),
		node("Gather", []string{"shape", "zero"}, "n", attrInt("axis", 0)),
		node("Unsqueeze", []string{"n", "axis0"}, "n1"),
		node("Concat", []string{"n1", "minus1", "minus1"}, "size", attrInt("axis", 0)),
		node("Reshape", []string{"size", "minus1"}, "size1"),
		node("Shape", []string{"size1"}, "rank"),
		node("ConstantOfShape", []string{"rank"}, "ones", attrTensor("value", one)),
		node("Mul", []string{"ones", "neg"}, "negs"),
		node("Equal", []string{"size1", "negs"}, "keep"),
		node("Where", []string{"keep", "ones", "size1"}, "target"),
		node("Expand", []string{"cls", "target"}, "cls_n"),
		node("Concat", []string{"cls_n", "x"}, "tokens_all", attrInt("axis", 1)),
		node("ReduceSum", []string{"tokens_all", "tokens"}, "y", attrInt("keepdims", 0)),
	)
	g := m.GetGraph()
	g.Input = append(g.Input, tensorValueInfo("cls", onnxpb.TensorProto_DOUBLE, shapeOf([]int64{1, 1, 4})))
	g.Input[0] = tensorValueInfo("x", onnxpb.TensorProto_DOUBLE, Shape{batch, known(16), known(4)})
	g.Output = []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_DOUBLE, nil)}
	return m
}

// TestClassTokenChain checks that the class-token chain of ViT exports is
// folded: the Expand's output shape is inferred, the model is
// differentiated in VJP and Jacobian mode, and the VJP matches finite
// differences, with the batch symbolic and static.
func TestClassTokenChain(t *testing.T) {
	rt := newTestRuntime(t)
	for _, batch := range []Dim{{Param: "N"}, known(2)} {
		t.Run(fmt.Sprintf("batch %v", batch), func(t *testing.T) {
			m := classTokenModel(batch)
			gr := newGraph(m, "")
			gr.infer()
			if got, want := gr.info["cls_n"].String(), (&tensorInfo{elem: onnxpb.TensorProto_DOUBLE, shape: Shape{batch, known(1), known(4)}, hasShape: true}).String(); got != want {
				t.Fatalf("Expand output: %s, want %s", got, want)
			}
			if _, err := Build(m, Options{Mode: Jacobian, WRT: []string{"x"}}); err != nil {
				t.Fatal(err)
			}
			feeds := map[string]*testTensor{
				"x":   {shape: []int64{2, 16, 4}, data: linspace(-1, 1, 2*16*4)},
				"cls": {shape: []int64{1, 1, 4}, data: []float64{0.3, -0.2, 0.5, 1.1}},
			}
			checkFiniteDifferences(t, rt, m, []string{"x", "cls"}, feeds, tolF64, hF64)
		})
	}
}
