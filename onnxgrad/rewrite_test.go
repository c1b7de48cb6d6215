package onnxgrad

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// reluPoolModel is x → Relu → r → MaxPool(2×2) → y, plus extra nodes and
// outputs that may read r or the MaxPool's indices.
func reluPoolModel(extra []*onnxpb.NodeProto, outputs ...string) *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{
		Name:  proto.String("relu-pool"),
		Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, shapeOf([]int64{2, 3, 4, 4}))},
		Node: append([]*onnxpb.NodeProto{
			{Name: proto.String("relu"), OpType: proto.String("Relu"), Input: []string{"x"}, Output: []string{"r"}},
			{Name: proto.String("pool"), OpType: proto.String("MaxPool"), Input: []string{"r"}, Output: []string{"y", "idx"},
				Attribute: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}},
		}, extra...),
		ValueInfo: []*onnxpb.ValueInfoProto{tensorValueInfo("r", onnxpb.TensorProto_FLOAT, shapeOf([]int64{2, 3, 4, 4}))},
	}
	for _, o := range append([]string{"y"}, outputs...) {
		elem := onnxpb.TensorProto_FLOAT
		if o == "idx" {
			elem = onnxpb.TensorProto_INT64
		}
		g.Output = append(g.Output, tensorValueInfo(o, elem, nil))
	}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
}

func TestCommuteReluMaxPool(t *testing.T) {
	sigmoid := func(in string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String("Sigmoid"), Input: []string{in}, Output: []string{"z"}}
	}
	for _, tc := range []struct {
		name    string
		m       *onnxpb.ModelProto
		commute bool
	}{
		{"relu feeds only the pool", reluPoolModel(nil), true},
		{"relu output read elsewhere", reluPoolModel([]*onnxpb.NodeProto{sigmoid("r")}, "z"), false},
		{"relu output is a graph output", reluPoolModel(nil, "r"), false},
		{"indices read", reluPoolModel(nil, "idx"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gr := newGraph(proto.Clone(tc.m).(*onnxpb.ModelProto), "")
			gr.commuteReluMaxPool()
			ops := []string{}
			for _, n := range gr.g.GetNode() {
				ops = append(ops, n.GetOpType())
			}
			if got := ops[0] == "MaxPool"; got != tc.commute {
				t.Fatalf("nodes %v: commuted = %v, want %v", ops, got, tc.commute)
			}
			if !tc.commute {
				if !proto.Equal(gr.m, tc.m) {
					t.Error("the model changed")
				}
				return
			}
			pool, relu := gr.g.GetNode()[0], gr.g.GetNode()[1]
			if pool.GetInput()[0] != "x" || relu.GetInput()[0] != pool.GetOutput()[0] || relu.GetOutput()[0] != "y" {
				t.Errorf("pool %v → %v, relu %v → %v; want x → p → y", pool.GetInput(), pool.GetOutput(), relu.GetInput(), relu.GetOutput())
			}
			if slices.ContainsFunc(gr.g.GetValueInfo(), func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == "r" }) {
				t.Error("the value_info of the removed tensor r is still there")
			}
		})
	}
}

// TestCommuteReluMaxPoolOutput checks that the rewritten model computes the
// same output, with windows of negative values and ties among them.
func TestCommuteReluMaxPoolOutput(t *testing.T) {
	rt := newTestRuntime(t)
	m := reluPoolModel(nil)
	x := &testTensor{shape: []int64{2, 3, 4, 4}, data: make([]float64, 96)}
	for i := range x.data {
		x.data[i] = float64(i%7) - 4 // windows all negative, tied, or mixed
	}
	res, err := Build(m, Options{Mode: VJP})
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.GetGraph().GetNode()[0].GetOpType() != "MaxPool" {
		t.Fatal("Build did not commute Relu → MaxPool")
	}
	want := rt.run(t, m, map[string]*testTensor{"x": x}, []string{"y"})["y"]
	seed := &testTensor{shape: want.shape, data: make([]float64, len(want.data))}
	got := rt.run(t, res.Model, map[string]*testTensor{"x": x, res.Seed: seed}, []string{"y"})["y"]
	if !slices.Equal(got.data, want.data) {
		t.Errorf("y = %v; want %v", got.data, want.data)
	}
}
