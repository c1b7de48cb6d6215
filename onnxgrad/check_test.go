package onnxgrad

import (
	"errors"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestCheckGradsCatchesBrokenRules registers deliberately wrong gradient
// rules and checks that Build's central check names the node and says what
// is wrong, in VJP and Jacobian mode.
func TestCheckGradsCatchesBrokenRules(t *testing.T) {
	broken := map[string]opRule{
		// The gradient of a [2, 3] input summed over axis 1: shape [2, 1].
		"TestWrongShape": {infer: inferSame, grad: func(c *gradCtx) error {
			c.setGrad(0, c.op("ReduceSum", []string{c.gy[0], c.gr.ints(int64(1 + c.off()))}, attrInt("keepdims", 1)))
			return nil
		}},
		// Drops the class axis in Jacobian mode: right in VJP mode only.
		"TestDropsLead": {infer: inferSame, grad: func(c *gradCtx) error {
			c.setGrad(0, c.op("Reshape", []string{c.gy[0], c.op("Shape", []string{c.input(0)})}))
			return nil
		}},
		// Emits a MatMul of incompatible operands.
		"TestBadNode": {infer: inferSame, grad: func(c *gradCtx) error {
			c.setGrad(0, c.op("MatMul", []string{c.gy[0], c.gr.constFloat(onnxpb.TensorProto_DOUBLE, []int64{5, 3}, make([]float64, 15))}))
			return nil
		}},
		// Emits an op without a shape rule (CumSum stays without rules:
		// testdata/models/unsupported.onnx relies on it).
		"TestUncheckable": {infer: inferSame, grad: func(c *gradCtx) error {
			c.setGrad(0, c.op("CumSum", []string{c.gy[0], c.gr.ints(int64(1 + c.off()))}))
			return nil
		}},
		// Returns a float32 gradient for a double input.
		"TestWrongType": {infer: inferSame, grad: func(c *gradCtx) error {
			c.setGrad(0, c.op("Cast", []string{c.gy[0]}, attrInt("to", int64(onnxpb.TensorProto_FLOAT))))
			return nil
		}},
	}
	for op, r := range broken {
		rules[op] = r
	}
	t.Cleanup(func() {
		for op := range broken {
			delete(rules, op)
		}
	})
	cases := []struct {
		op   string
		mode Mode
		want string // nil error when ""
	}{
		{"TestWrongShape", VJP, `has shape [2,1], the input [2,3]`},
		{"TestWrongShape", Jacobian, `has shape [3,2,1], the input [2,3] (gradients carry a leading class axis in Jacobian mode)`},
		{"TestDropsLead", VJP, ""},
		{"TestDropsLead", Jacobian, `the input [2,3] (gradients carry a leading class axis`},
		{"TestBadNode", VJP, `emitted a MatMul node that fails shape inference`},
		{"TestWrongType", VJP, `is FLOAT, the input DOUBLE`},
		{"TestUncheckable", VJP, `emitted a CumSum node, which has no shape rule`},
	}
	for _, tc := range cases {
		t.Run(tc.op+"/"+tc.mode.String(), func(t *testing.T) {
			m, diff := caseModel(ruleCase{name: tc.op, op: tc.op, inputs: []caseInput{f(2, 3)}}, onnxpb.TensorProto_DOUBLE)
			_, err := Build(m, Options{Mode: tc.mode, WRT: diff})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				return
			}
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Node != "node" || ne.OpType != tc.op {
				t.Fatalf("Build: %v; want a NodeError for node %q (%s)", err, "node", tc.op)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v; want it to say %q", err, tc.want)
			}
		})
	}
}

// TestUnsupportedOpIsTheError checks that an op without a rule before the
// output is reported as such in every mode, and that inference keeps the
// output's declared type: the rules after the unknown op (Add, Flatten,
// Gemm) cannot infer anything, which once turned the declared FLOAT output
// into UNDEFINED and the error into "element type UNDEFINED is not floating
// point".
func TestUnsupportedOpIsTheError(t *testing.T) {
	g := &onnxpb.GraphProto{
		Name:  ptr("cumsum"),
		Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(2), known(3), known(3)})},
		Initializer: []*onnxpb.TensorProto{
			NewTensorFloat32("bias", []int64{1}, []float32{0.5}),
			NewTensorFloat32("w", []int64{18, 4}, make([]float32, 72)),
			newTensorInt64("axis", nil, []int64{1}),
		},
		Node: []*onnxpb.NodeProto{
			{Name: ptr("cumsum"), OpType: ptr("CumSum"), Input: []string{"x", "axis"}, Output: []string{"n"}},
			{Name: ptr("add"), OpType: ptr("Add"), Input: []string{"n", "bias"}, Output: []string{"a"}},
			{Name: ptr("flatten"), OpType: ptr("Flatten"), Input: []string{"a"}, Output: []string{"f"}},
			{Name: ptr("gemm"), OpType: ptr("Gemm"), Input: []string{"f", "w"}, Output: []string{"logits"}},
		},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("logits", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(4)})},
	}
	m := &onnxpb.ModelProto{IrVersion: ptrInt64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}}}
	for _, mode := range []Mode{VJP, Jacobian, Params} {
		_, err := Build(m, Options{Mode: mode, File: "cumsum.onnx"})
		var u *UnsupportedOpError
		if !errors.As(err, &u) || u.OpType != "CumSum" || u.Node != "cumsum" {
			t.Errorf("%v: Build: %v; want an UnsupportedOpError for CumSum in node \"cumsum\"", mode, err)
			continue
		}
		want := `onnxgrad: cumsum.onnx: unsupported op "CumSum" in node "cumsum": no gradient rule`
		if mode == Params { // the weights come after the CumSum
			want = `onnxgrad: cumsum.onnx: unsupported op "CumSum" in node "cumsum": no shape rule, so the shapes after it are unknown`
		}
		if err.Error() != want {
			t.Errorf("%v: error %q; want %q", mode, err, want)
		}
	}
	gr := newGraph(m, "")
	gr.infer()
	if got := gr.info["logits"]; got == nil || got.elem != onnxpb.TensorProto_FLOAT || got.shape.String() != "[N,4]" {
		t.Errorf("inferred %v for the declared output; want FLOAT[N,4]", got)
	}
}

func ptrInt64(v int64) *int64 { return &v }

// TestParameterInputsGetNoGradient checks what Build does with float
// tensors that ops read only as parameters they do not differentiate:
// asked for by name, they are refused with ErrNotDifferentiable (once a
// gradient output fed by nothing came out); among the default weights of
// Params mode, they are left out.
func TestParameterInputsGetNoGradient(t *testing.T) {
	g := &onnxpb.GraphProto{
		Name:  ptr("params"),
		Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(2), known(3), known(3)})},
		Initializer: []*onnxpb.TensorProto{
			NewTensorFloat32("scales", []int64{4}, []float32{1, 1, 2, 2}),
			NewTensorFloat32("lo", nil, []float32{-0.5}),
			NewTensorFloat32("w", []int64{72, 4}, make([]float32, 288)),
		},
		Node: []*onnxpb.NodeProto{
			{Name: ptr("resize"), OpType: ptr("Resize"), Input: []string{"x", "", "scales"}, Output: []string{"r"}},
			{Name: ptr("clip"), OpType: ptr("Clip"), Input: []string{"r", "lo"}, Output: []string{"c"}},
			{Name: ptr("flatten"), OpType: ptr("Flatten"), Input: []string{"c"}, Output: []string{"f"}},
			{Name: ptr("gemm"), OpType: ptr("Gemm"), Input: []string{"f", "w"}, Output: []string{"y"}},
		},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(4)})},
	}
	m := &onnxpb.ModelProto{IrVersion: ptrInt64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptrInt64(13)}}}
	res, err := Build(m, Options{Mode: Params})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.WRT) != 1 || res.WRT[0] != "w" {
		t.Errorf("Params mode differentiates %v; want only the weight w", res.WRT)
	}
	for _, w := range []string{"scales", "lo"} {
		if _, err := Build(m, Options{Mode: Params, WRT: []string{w}}); !errors.Is(err, ErrNotDifferentiable) || !strings.Contains(err.Error(), w) {
			t.Errorf("WRT %s: %v; want ErrNotDifferentiable naming it", w, err)
		}
	}
}

// TestBuildDeclaresKnownSizes checks that an output declared with symbols
// for sizes inference knows (as static torch exports write them) is
// declared with the sizes in the gradient model.
func TestBuildDeclaresKnownSizes(t *testing.T) {
	m := tinyModel()
	m.Graph.Input[0] = tensorValueInfo("x", onnxpb.TensorProto_FLOAT, Shape{known(5), known(3)})
	m.Graph.Output[0] = tensorValueInfo("y", onnxpb.TensorProto_FLOAT, Shape{{Param: "Relu_dim_0"}, {Param: "Relu_dim_1"}})
	res, err := Build(m, Options{Mode: Jacobian})
	if err != nil {
		t.Fatal(err)
	}
	got := infoFromValueInfo(res.Model.GetGraph().GetOutput()[0]).shape.String()
	if got != "[5,2]" {
		t.Errorf("output y declared %s; want [5,2]", got)
	}
}
