package onnxgrad

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// functionModel is a two-layer network written as PyTorch 2's dynamo
// exporter writes models: the graph calls "Head", a local function of the
// domain "pkg.test", which calls "LinearAct" twice, once with its alpha
// attribute and once relying on the default that attribute_proto declares
// (0.05). twin is the same network with the functions written out.
func functionModel() (m, twin *onnxpb.ModelProto) {
	node := func(name, op, domain string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: ptr(name), OpType: ptr(op), Domain: ptr(domain), Input: in, Output: out, Attribute: attrs}
	}
	alphaRef := &onnxpb.AttributeProto{Name: ptr("alpha"), Type: onnxpb.AttributeProto_FLOAT.Enum(), RefAttrName: ptr("alpha")}
	linearAct := &onnxpb.FunctionProto{
		Name: ptr("LinearAct"), Domain: ptr("pkg.test"),
		Input: []string{"X", "W", "B"}, Output: []string{"Y"}, Attribute: []string{"alpha"},
		Node: []*onnxpb.NodeProto{
			node("mm", "MatMul", "", []string{"X", "W"}, []string{"t"}),
			node("add", "Add", "", []string{"t", "B"}, []string{"u"}),
			node("act", "LeakyRelu", "", []string{"u"}, []string{"Y"}, alphaRef),
		},
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}},
	}
	// attribute_proto (field 11, ONNX ≥ 1.13) holds the default of alpha.
	def, _ := proto.Marshal(attrFloat("alpha", 0.05))
	linearAct.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), def))
	head := &onnxpb.FunctionProto{
		Name: ptr("Head"), Domain: ptr("pkg.test"),
		Input: []string{"X", "W1", "B1", "W2", "B2"}, Output: []string{"Z"},
		Node: []*onnxpb.NodeProto{
			node("l1", "LinearAct", "pkg.test", []string{"X", "W1", "B1"}, []string{"h"}, attrFloat("alpha", 0.2)),
			node("l2", "LinearAct", "pkg.test", []string{"h", "W2", "B2"}, []string{"Z"}),
		},
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}, {Domain: ptr("pkg.test"), Version: ptrInt64(1)}},
	}
	rng := rand.New(rand.NewPCG(3, 5))
	weights := func(name string, dims ...int64) *onnxpb.TensorProto {
		n, _ := numElements(dims)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return NewTensorFloat32(name, dims, v)
	}
	inits := []*onnxpb.TensorProto{weights("w1", 4, 6), weights("b1", 6), weights("w2", 6, 3), weights("b2", 3)}
	io := func(g *onnxpb.GraphProto) {
		g.Input = []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(4)})}
		g.Output = []*onnxpb.ValueInfoProto{tensorValueInfo("z", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(3)})}
		for _, t := range inits {
			g.Initializer = append(g.Initializer, proto.Clone(t).(*onnxpb.TensorProto))
		}
	}
	m = &onnxpb.ModelProto{IrVersion: ptrInt64(8), Functions: []*onnxpb.FunctionProto{linearAct, head},
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}, {Domain: ptr("pkg.test"), Version: ptrInt64(1)}},
		Graph:       &onnxpb.GraphProto{Name: ptr("functions"), Node: []*onnxpb.NodeProto{node("head", "Head", "pkg.test", []string{"x", "w1", "b1", "w2", "b2"}, []string{"z"})}}}
	io(m.Graph)
	twin = &onnxpb.ModelProto{IrVersion: ptrInt64(8), OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}},
		Graph: &onnxpb.GraphProto{Name: ptr("twin"), Node: []*onnxpb.NodeProto{
			node("mm1", "MatMul", "", []string{"x", "w1"}, []string{"t1"}),
			node("add1", "Add", "", []string{"t1", "b1"}, []string{"u1"}),
			node("act1", "LeakyRelu", "", []string{"u1"}, []string{"h"}, attrFloat("alpha", 0.2)),
			node("mm2", "MatMul", "", []string{"h", "w2"}, []string{"t2"}),
			node("add2", "Add", "", []string{"t2", "b2"}, []string{"u2"}),
			node("act2", "LeakyRelu", "", []string{"u2"}, []string{"z"}, attrFloat("alpha", 0.05)),
		}}}
	io(twin.Graph)
	return m, twin
}

// TestDecodeInlinesFunctions checks that a model calling local functions
// (nested, with attribute references and attribute_proto defaults) is read
// as the network they spell out: no functions or function domains left,
// the same outputs as the written-out twin and as onnxruntime's own
// evaluation of the functions, and a Jacobian.
func TestDecodeInlinesFunctions(t *testing.T) {
	rt := newTestRuntime(t)
	fm, twin := functionModel()
	data, err := Encode(fm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(data, "functions.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.GetFunctions()) != 0 || len(m.GetOpsetImport()) != 1 {
		t.Errorf("after inlining: %d functions, opsets %v", len(m.GetFunctions()), m.GetOpsetImport())
	}
	var ops []string
	for _, n := range m.GetGraph().GetNode() {
		ops = append(ops, n.GetOpType())
	}
	if got := strings.Join(ops, " "); got != "MatMul Add LeakyRelu MatMul Add LeakyRelu" {
		t.Errorf("inlined ops %q", got)
	}
	x := &testTensor{shape: []int64{5, 4}, data: randn(rand.New(rand.NewPCG(1, 1)), 20)}
	feeds := map[string]*testTensor{"x": x}
	want := rt.run(t, twin, feeds, []string{"z"})["z"]
	for name, model := range map[string]*onnxpb.ModelProto{"inlined": m, "onnxruntime's functions": fm} {
		got := rt.run(t, model, feeds, []string{"z"})["z"]
		for i := range want.data {
			if math.Abs(got.data[i]-want.data[i]) > 1e-6*(1+math.Abs(want.data[i])) {
				t.Fatalf("%s: z[%d] = %g, the written-out twin gives %g", name, i, got.data[i], want.data[i])
			}
		}
	}
	if _, err := Build(m, Options{Mode: Jacobian}); err != nil {
		t.Errorf("Jacobian of the inlined model: %v", err)
	}
}

// TestInlineFunctionsRefuses checks the function forms inlining refuses.
func TestInlineFunctionsRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *onnxpb.ModelProto)
		want   string
	}{
		{"recursion", func(m *onnxpb.ModelProto) {
			m.Functions[0].Node[0] = &onnxpb.NodeProto{Name: ptr("again"), OpType: ptr("LinearAct"), Domain: ptr("pkg.test"), Input: []string{"X", "W", "B"}, Output: []string{"t"}}
		}, "calls nest deeper than 32"},
		{"exponential", func(m *onnxpb.ModelProto) {
			// F0 calls F1 twice, F1 calls F2 twice, …: 2^30 nodes.
			m.Functions = nil
			for i := range 30 {
				f := &onnxpb.FunctionProto{Name: ptr(fmt.Sprint("F", i)), Domain: ptr("pkg.test"), Input: []string{"X"}, Output: []string{"Y"},
					OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}}}
				op, domain := fmt.Sprint("F", i+1), "pkg.test"
				if i == 29 {
					op, domain = "Relu", ""
				}
				f.Node = []*onnxpb.NodeProto{
					{Name: ptr("a"), OpType: ptr(op), Domain: ptr(domain), Input: []string{"X"}, Output: []string{"t"}},
					{Name: ptr("b"), OpType: ptr(op), Domain: ptr(domain), Input: []string{"t"}, Output: []string{"Y"}},
				}
				m.Functions = append(m.Functions, f)
			}
			m.Graph.Node = []*onnxpb.NodeProto{{Name: ptr("f0"), OpType: ptr("F0"), Domain: ptr("pkg.test"), Input: []string{"x"}, Output: []string{"z"}}}
		}, "inlining makes more than 1048576 nodes"},
		{"other opset", func(m *onnxpb.ModelProto) { m.Functions[0].OpsetImport[0].Version = ptrInt64(17) }, "default-domain opset 17, the model 13"},
		{"defined twice", func(m *onnxpb.ModelProto) { m.Functions = append(m.Functions, m.Functions[0]) }, `function "LinearAct" of domain "pkg.test" is defined twice`},
		{"too many inputs", func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Input = append(m.Graph.Node[0].Input, "x")
		}, "6 inputs and 1 outputs for a function of 5 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := functionModel()
			tt.mutate(m)
			_, err := Decode(mustEncode(t, m), "functions.onnx")
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode: %v; want a FormatError saying %q", err, tt.want)
			}
		})
	}
}
