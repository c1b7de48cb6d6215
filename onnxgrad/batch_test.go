package onnxgrad

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// batchCase is a model exported with a fixed batch b: input "x" of shape
// [b, sample...], output "y" of shape [b, ...] with each image's row
// depending on that image alone.
type batchCase struct {
	name   string
	b      int64
	sample []int64
	opset  int64
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	// want are the changes after the input's, in order.
	want []string
}

func (c *batchCase) model() *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{
		Name:        proto.String(c.name),
		Input:       []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, shapeOf(append([]int64{c.b}, c.sample...)))},
		Output:      []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, nil)},
		Node:        c.nodes,
		Initializer: c.inits,
	}
	opset := c.opset
	if opset == 0 {
		opset = 13
	}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}}}
}

func batchNode(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
}

func ramp(name string, dims ...int64) *onnxpb.TensorProto {
	n, _ := numElements(dims)
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%7) - 2.5
	}
	return NewTensorFloat32(name, dims, v)
}

// batchCases are the forms of a fixed batch that exporters write.
var batchCases = []batchCase{
	{
		name: "flatten by Reshape", b: 1, sample: []int64{2, 3},
		nodes: []*onnxpb.NodeProto{
			batchNode("Reshape", []string{"x", "target"}, "flat"),
			batchNode("MatMul", []string{"flat", "W"}, "y"),
		},
		inits: []*onnxpb.TensorProto{newTensorInt64("target", []int64{2}, []int64{1, -1}), ramp("W", 6, 4)},
		want:  []string{`node "flat" (Reshape): shape [1 -1] → [0 -1] (0 copies the batch size)`},
	},
	{
		name: "flatten by Reshape, batch 3", b: 3, sample: []int64{2, 3},
		nodes: []*onnxpb.NodeProto{
			batchNode("Constant", nil, "target", attrTensor("value", newTensorInt64("", []int64{2}, []int64{3, 6}))),
			batchNode("Reshape", []string{"x", "target"}, "flat"),
			batchNode("MatMul", []string{"flat", "W"}, "y"),
		},
		inits: []*onnxpb.TensorProto{ramp("W", 6, 4)},
		want:  []string{`node "flat" (Reshape): shape [3 6] → [0 6] (0 copies the batch size)`},
	},
	{
		name: "Reshape with allowzero", b: 2, sample: []int64{2, 3}, opset: 14,
		nodes: []*onnxpb.NodeProto{batchNode("Reshape", []string{"x", "target"}, "y", attrInt("allowzero", 1))},
		inits: []*onnxpb.TensorProto{newTensorInt64("target", []int64{3}, []int64{2, 3, 2})},
		want:  []string{`node "y" (Reshape): shape [2 3 2] → [N 3 2]`},
	},
	{
		name: "class token concatenated", b: 1, sample: []int64{3, 4},
		nodes: []*onnxpb.NodeProto{batchNode("Concat", []string{"cls", "x"}, "y", attrInt("axis", 1))},
		inits: []*onnxpb.TensorProto{ramp("cls", 1, 1, 4)},
		want:  []string{`node "y" (Concat): input "cls" expanded to [N 1 1]`},
	},
	{
		name: "class token expanded", b: 1, sample: []int64{3, 4},
		nodes: []*onnxpb.NodeProto{
			batchNode("Expand", []string{"cls", "shape"}, "token"),
			batchNode("Concat", []string{"token", "x"}, "y", attrInt("axis", 1)),
		},
		inits: []*onnxpb.TensorProto{ramp("cls", 1, 4), newTensorInt64("shape", []int64{3}, []int64{1, 1, 4})},
		want:  []string{`node "token" (Expand): shape [1 1 4] → [N 1 4]`},
	},
	{
		// CumSum, which has no shape rule, hides the token's shape.
		name: "class token of unknown shape", b: 1, sample: []int64{3, 4},
		nodes: []*onnxpb.NodeProto{
			batchNode("CumSum", []string{"steps", "axis"}, "shape"),
			batchNode("Expand", []string{"cls", "shape"}, "token"),
			batchNode("Concat", []string{"token", "x"}, "y", attrInt("axis", 1)),
		},
		inits: []*onnxpb.TensorProto{ramp("cls", 1, 4), newTensorInt64("steps", []int64{3}, []int64{1, 0, 3}), newTensorInt64("axis", nil, []int64{0})},
		want:  []string{`node "y" (Concat): input "token" expanded to [N 1 1]`},
	},
	{
		name: "ConstantOfShape added", b: 2, sample: []int64{3},
		nodes: []*onnxpb.NodeProto{
			batchNode("ConstantOfShape", []string{"shape"}, "half", attrTensor("value", NewTensorFloat32("", []int64{1}, []float32{0.5}))),
			batchNode("Add", []string{"x", "half"}, "y"),
		},
		inits: []*onnxpb.TensorProto{newTensorInt64("shape", []int64{2}, []int64{2, 3})},
		want:  []string{`node "half" (ConstantOfShape): shape [2 3] → [N 3]`},
	},
	{
		name: "Tile multiplied", b: 2, sample: []int64{3},
		nodes: []*onnxpb.NodeProto{
			batchNode("Tile", []string{"row", "repeats"}, "rows"),
			batchNode("Mul", []string{"rows", "x"}, "y"),
		},
		inits: []*onnxpb.TensorProto{ramp("row", 1, 3), newTensorInt64("repeats", []int64{2}, []int64{2, 1})},
		want:  []string{`node "rows" (Tile): repeats [2 1] → [N 1]`},
	},
	{
		name: "a weight reshaped to [1, …] is left alone", b: 1, sample: []int64{12},
		nodes: []*onnxpb.NodeProto{
			batchNode("Reshape", []string{"W", "target"}, "w"),
			batchNode("Add", []string{"x", "w"}, "y"),
		},
		inits: []*onnxpb.TensorProto{ramp("W", 3, 4), newTensorInt64("target", []int64{2}, []int64{1, 12})},
	},
	{
		name: "a rewrite revealing the next", b: 1, sample: []int64{2, 3},
		nodes: []*onnxpb.NodeProto{
			batchNode("Reshape", []string{"x", "target"}, "flat"),
			batchNode("Concat", []string{"flat", "bias"}, "y", attrInt("axis", 1)),
		},
		inits: []*onnxpb.TensorProto{newTensorInt64("target", []int64{2}, []int64{1, 6}), ramp("bias", 1, 2)},
		want: []string{
			`node "flat" (Reshape): shape [1 6] → [0 6] (0 copies the batch size)`,
			`node "y" (Concat): input "bias" expanded to [N 1]`,
		},
	},
}

// TestSymbolicBatch rewrites each case and checks the changes, and that the
// rewritten model computes, on 2b + 1 images in one run, what the original
// computes b images at a time.
func TestSymbolicBatch(t *testing.T) {
	rt := newTestRuntime(t)
	for _, c := range batchCases {
		t.Run(c.name, func(t *testing.T) {
			m := c.model()
			orig := proto.Clone(m).(*onnxpb.ModelProto)
			res, err := SymbolicBatch(m, BatchOptions{File: c.name})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m, orig) {
				t.Error("SymbolicBatch modified its argument")
			}
			want := append([]string{`input "x": batch dimension ` + strconv.FormatInt(c.b, 10) + " → N"}, c.want...)
			if !slices.Equal(res.Changes, want) {
				t.Errorf("changes\n%s\nwant\n%s", strings.Join(res.Changes, "\n"), strings.Join(want, "\n"))
			}
			if res.Input != "x" || res.Size != c.b {
				t.Errorf("input %q, size %d; want x, %d", res.Input, res.Size, c.b)
			}
			if err := Validate(res.Model, c.name); err != nil {
				t.Fatal(err)
			}

			n := 2*c.b + 1
			d, _ := numElements(c.sample)
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			x := randn(rng, int(n*d))
			all := rt.run(t, res.Model, map[string]*testTensor{"x": {shape: append([]int64{n}, c.sample...), data: x}}, []string{"y"})["y"]
			if all.shape[0] != n {
				t.Fatalf("output shape %v for %d images", all.shape, n)
			}
			per := len(all.data) / int(n)
			// The original runs b images at a time; the last run takes the
			// last b images, overlapping the one before.
			for s := int64(0); s < n; s += c.b {
				s := min(s, n-c.b)
				chunk := &testTensor{shape: append([]int64{c.b}, c.sample...), data: x[s*d : (s+c.b)*d]}
				y := rt.run(t, orig, map[string]*testTensor{"x": chunk}, []string{"y"})["y"]
				got := all.data[int(s)*per : int(s+c.b)*per]
				for i, v := range y.data {
					// The same operations on the same values: equal up to
					// the summation order of batched kernels.
					if math.Abs(got[i]-v) > 1e-5*(1+math.Abs(v)) {
						t.Fatalf("image %d, value %d: %v in one run of %d images, %v in runs of %d", int(s)+i/per, i%per, got[i], n, v, c.b)
					}
				}
			}
		})
	}
}

// TestSymbolicBatchLeavesMergedBatch checks that a Reshape that merges the
// batch with the image's axes, which no rewrite can fix, is left as it is.
func TestSymbolicBatchLeavesMergedBatch(t *testing.T) {
	c := batchCase{name: "merged", b: 2, sample: []int64{3},
		nodes: []*onnxpb.NodeProto{batchNode("Reshape", []string{"x", "target"}, "y")},
		inits: []*onnxpb.TensorProto{newTensorInt64("target", []int64{1}, []int64{6})},
	}
	res, err := SymbolicBatch(c.model(), BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 {
		t.Errorf("changes %q; want only the input's", res.Changes)
	}
}

func TestSymbolicBatchErrors(t *testing.T) {
	fixed := batchCases[0].model()
	symbolic := batchCases[0].model()
	symbolic.GetGraph().GetInput()[0].GetType().GetTensorType().GetShape().GetDim()[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}
	for _, tc := range []struct {
		name string
		m    *onnxpb.ModelProto
		opt  BatchOptions
		want string
	}{
		{"symbolic batch", symbolic, BatchOptions{}, `graph.input "x": the batch size is not fixed (dimension 0 is "batch")`},
		{"other size", fixed, BatchOptions{Size: 2}, `graph.input "x": batch size 2, but the input declares 1`},
		{"no such input", fixed, BatchOptions{Input: "image"}, `graph.input: no input "image"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SymbolicBatch(tc.m, tc.opt)
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want a FormatError saying %q", err, tc.want)
			}
		})
	}
	// A caller that made the batch symbolic already gives the size.
	if res, err := SymbolicBatch(symbolic, BatchOptions{Size: 1}); err != nil || len(res.Changes) != 2 {
		t.Errorf("symbolic input with Size 1: %v, %v; want the Reshape rewritten", res, err)
	}
}
