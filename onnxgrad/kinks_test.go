package onnxgrad

import (
	"math"
	"testing"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestKinksAndTiesFollowPyTorch checks what finite differences cannot, the
// gradient where the function is not differentiable, against the values
// torch 1.13 gives: inputs attaining an extreme together share the
// gradient equally (torch.maximum, torch.amax, torch.amin), HardSwish's
// inner branch takes both kinks, Selu's left branch takes 0, ReduceProd
// handles zeros, ReduceL2 gives 0 at a zero norm and MaxPool gives a tied
// window's gradient to its first maximum. The cotangent is all
// ones.
func TestKinksAndTiesFollowPyTorch(t *testing.T) {
	rt := newTestRuntime(t)
	vals := func(shape []int64, v ...float64) caseInput { return caseInput{shape: shape, values: v} }
	for _, tc := range []struct {
		c    ruleCase
		want [][]float64 // per input
	}{
		{ruleCase{name: "Max two", op: "Max", inputs: []caseInput{vals([]int64{1, 3}, 1, 2, 3), vals([]int64{1, 3}, 1, 5, 0)}},
			[][]float64{{0.5, 0, 1}, {0.5, 1, 0}}},
		{ruleCase{name: "Max three broadcast", op: "Max", inputs: []caseInput{vals([]int64{1, 2}, 4, 1), vals([]int64{1, 2}, 4, 2), vals([]int64{1}, 4)}},
			[][]float64{{1.0 / 3, 0}, {1.0 / 3, 0}, {1.0/3 + 1}}},
		{ruleCase{name: "Min two", op: "Min", inputs: []caseInput{vals([]int64{1, 2}, -1, 7), vals([]int64{1, 2}, -1, 3)}},
			[][]float64{{0.5, 0}, {0.5, 1}}},
		{ruleCase{name: "ReduceMax", op: "ReduceMax", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{vals([]int64{2, 3}, 1, 3, 3, 2, 2, 2)}},
			[][]float64{{0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3}}},
		{ruleCase{name: "ReduceMin all", op: "ReduceMin", attrs: []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, inputs: []caseInput{vals([]int64{2, 2}, 0, 5, 0, 1)}},
			[][]float64{{0.5, 0, 0.5, 0}}},
		{ruleCase{name: "HardSwish", op: "HardSwish", opset: 14, float32: true, inputs: []caseInput{vals([]int64{1, 5}, -3, 3, -4, 4, 0)}},
			[][]float64{{-0.5, 1.5, 0, 1, 0.5}}},
		{ruleCase{name: "Selu", op: "Selu", float32: true, inputs: []caseInput{vals([]int64{1, 3}, 0, -1, 1)}},
			[][]float64{{1.7580993, 0.6467686, 1.0507010}}},
		{ruleCase{name: "ReduceProd zeros", op: "ReduceProd", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{vals([]int64{2, 3}, 0, 2, 3, 0, 0, 1)}},
			[][]float64{{6, 0, 0, 0, 0, 0}}},
		// MaxPool gives a tied window's gradient to its first maximum in
		// row-major window order (torch.nn.functional.max_pool2d and
		// onnxruntime's Indices agree), here in each of three 2×2 windows
		// [3 3; 3 1], [0 5; 5 5], [0 1; 5 5]: in float32 with exact tiling
		// the indices come from ArgMax (poolIndices), in float64 and where
		// a trailing row is dropped or windows overlap from MaxPool.
		{ruleCase{name: "MaxPool ties", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})},
			inputs: []caseInput{vals([]int64{1, 1, 2, 6}, 3, 3, 0, 5, 0, 1, 3, 1, 5, 5, 5, 5)}},
			[][]float64{{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0}}},
		{ruleCase{name: "MaxPool ties float32", op: "MaxPool", float32: true, attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})},
			inputs: []caseInput{vals([]int64{1, 1, 2, 6}, 3, 3, 0, 5, 0, 1, 3, 1, 5, 5, 5, 5)}},
			[][]float64{{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0}}},
		{ruleCase{name: "MaxPool ties 1-D all equal float32", op: "MaxPool", float32: true, attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3}), attrInts("strides", []int64{3})},
			inputs: []caseInput{vals([]int64{1, 2, 3}, 2, 2, 2, -1, 4, 4)}},
			[][]float64{{1, 0, 0, 0, 1, 0}}},
		{ruleCase{name: "MaxPool ties float32 floor (MaxUnpool)", op: "MaxPool", float32: true, attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})},
			inputs: []caseInput{vals([]int64{1, 1, 3, 6}, 3, 3, 0, 5, 0, 1, 3, 1, 5, 5, 5, 5, 9, 9, 9, 9, 9, 9)}},
			[][]float64{{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}}},
		{ruleCase{name: "MaxPool ties overlapping (scatter)", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{1, 1})},
			inputs: []caseInput{vals([]int64{1, 1, 2, 3}, 3, 3, 3, 3, 3, 3)}},
			[][]float64{{1, 1, 0, 0, 0, 0}}},
		{ruleCase{name: "ReduceL2 zero", op: "ReduceL2", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{vals([]int64{2, 2}, 0, 0, 3, 4)}},
			[][]float64{{0, 0, 0.6, 0.8}}},
	} {
		t.Run(tc.c.name, func(t *testing.T) {
			// float32 kernels round to about 1e-7 relative
			elem, tol := onnxpb.TensorProto_DOUBLE, 1e-12
			if tc.c.float32 {
				elem, tol = onnxpb.TensorProto_FLOAT, 1e-6
			}
			m, wrt := caseModel(tc.c, elem)
			res, err := Build(m, Options{Mode: VJP, WRT: wrt})
			if err != nil {
				t.Fatal(err)
			}
			feeds := caseFeeds(tc.c)
			y := rt.run(t, m, feeds, []string{"y"})["y"]
			seed := &testTensor{shape: y.shape, data: make([]float64, len(y.data))}
			for i := range seed.data {
				seed.data[i] = 1
			}
			feeds[res.Seed] = seed
			out := rt.run(t, res.Model, feeds, res.Grads)
			for i, g := range res.Grads {
				for j, w := range tc.want[i] {
					if got := out[g].data[j]; math.Abs(got-w) > tol {
						t.Errorf("gradient of input %d: element %d = %g, want %g", i, j, got, w)
					}
				}
			}
		})
	}
}
