package onnxgrad

// Indexing operators: GatherElements, and those that only gradient graphs
// emit — TopK and OneHot for the Jacobian's candidate classes,
// ScatterElements for the gradients of MaxPool and GatherElements, and
// MaxUnpool and ArgMax for MaxPool's. The emitted ones have shape rules, so that
// Build's central check follows gradients through them, and no gradient
// rules.

import (
	"slices"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// https://onnx.ai/onnx/operators/onnx__TopK.html: values and INT64
// indices, input 0's shape with K along the axis.
func inferTopK(c *nodeCtx) error {
	x := c.shapeIn(0)
	k := c.intsIn(1)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", -1), len(x))
	if err != nil || len(k) != 1 {
		return c.errorf("axis %d of rank %d with K %v", c.attrInt("axis", -1), len(x), k)
	}
	out := slices.Clone(x)
	out[a] = known(k[0])
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	c.setOut(1, &tensorInfo{elem: onnxpb.TensorProto_INT64, shape: out, hasShape: true})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__ArgMax.html: INT64 indices of
// input 0's shape with the axis reduced to 1 or removed.
func inferArgMax(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", 0), len(x))
	if err != nil {
		return c.errorf("axis %d of rank %d", c.attrInt("axis", 0), len(x))
	}
	out := slices.Clone(x)
	if c.attrInt("keepdims", 1) != 0 {
		out[a] = known(1)
	} else {
		out = slices.Delete(out, a, a+1)
	}
	c.setOut(0, &tensorInfo{elem: onnxpb.TensorProto_INT64, shape: out, hasShape: true})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__OneHot.html: the indices' shape with
// the depth inserted at axis, of the values' type.
func inferOneHot(c *nodeCtx) error {
	idx := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", -1), len(idx)+1)
	if err != nil {
		return c.errorf("axis %d for indices of rank %d", c.attrInt("axis", -1), len(idx))
	}
	depth := unknownDim // a float depth, or one computed at run time
	if d := c.in(1); d != nil && len(d.value) == 1 {
		depth = d.value[0]
	}
	elem := onnxpb.TensorProto_UNDEFINED
	if v := c.in(2); v != nil {
		elem = v.elem
	}
	c.setOut(0, &tensorInfo{elem: elem, shape: slices.Insert(slices.Clone(idx), a, depth), hasShape: true})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__MaxUnpool.html: the output_shape
// input when given, else (in − 1)·stride + kernel − pads per spatial axis.
func inferMaxUnpool(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	if c.input(2) != "" {
		s := c.in(2)
		if s == nil || s.value == nil {
			return c.unknownf("output_shape %q is not a constant", c.input(2))
		}
		c.setOut(0, &tensorInfo{elem: c.elem(), shape: Shape(slices.Clone(s.value)), hasShape: true})
		return nil
	}
	r := len(x) - 2
	kernel := c.attrInts("kernel_shape", nil)
	strides := c.attrInts("strides", kernel)
	pads := c.attrInts("pads", make([]int64, 2*r))
	if r < 1 || len(kernel) != r || len(strides) != r || len(pads) != 2*r {
		return c.errorf("kernel_shape %v, strides %v and pads %v do not fit input %v", kernel, strides, pads, x)
	}
	out := slices.Clone(x)
	for i := range r {
		if d := x[2+i]; d.Known() {
			out[2+i] = known((d.Value-1)*strides[i] + kernel[i] - pads[i] - pads[r+i])
		} else {
			out[2+i] = unknownDim
		}
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__GatherElements.html: the data's
// type and the indices' shape.
func inferGatherElements(c *nodeCtx) error {
	idx := c.in(1)
	if idx == nil || !idx.hasShape {
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: idx.shape, hasShape: true})
	return nil
}

// gradGatherElements scatter-adds gY into zeros shaped like the data, at
// the positions the indices name along the axis (repeated indices
// accumulate): ScatterElements with reduction "add", which needs opset 16.
// In Jacobian mode the indices are expanded over the class axis of gY and
// the scatter runs along the axis after it.
func gradGatherElements(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", 0), len(x))
	if err != nil {
		return c.errorf("%v", err)
	}
	idx := c.input(1)
	if c.lead {
		idx = c.op("Expand", []string{c.op("Unsqueeze", []string{idx, c.gr.ints(0)}), c.op("Shape", []string{c.gy[0]})})
	}
	c.gr.needOpset(16)
	zeros := c.zerosGrad(c.input(0), c.gy[0])
	c.setGrad(0, c.op("ScatterElements", []string{zeros, idx, c.gy[0]}, attrInt("axis", int64(a+c.off())), attrString("reduction", "add")))
	return nil
}
