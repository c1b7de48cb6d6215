package onnxgrad

// Reductions: ReduceSum (axes as an input from opset 13) and ReduceMean,
// ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare, ReduceL1, ReduceL2 and
// ReduceLogSumExp (axes as an input from opset 18). All share one shape
// rule and one gradient frame (reduceRule); each adds only its derivative.

// reduceAxes returns the normalised reduced axes of a Reduce node over an
// input of rank r (all axes when none are given, unless
// noop_with_empty_axes), and whether the node is a no-op.
func reduceAxes(c *nodeCtx, r int, inputFrom int64) ([]int, bool) {
	axes, _ := axesOf(c, inputFrom)
	if len(axes) == 0 {
		if c.attrInt("noop_with_empty_axes", 0) != 0 {
			return nil, true
		}
		out := make([]int, r)
		for i := range out {
			out[i] = i
		}
		return out, false
	}
	out := make([]int, len(axes))
	for i, a := range axes {
		n, err := normAxis(a, r)
		if err != nil {
			c.fail("%v", err)
		}
		out[i] = n
	}
	return out, false
}

// inferReduce is the shape rule of every reduction: the reduced axes
// become 1 (keepdims=1) or disappear.
func inferReduce(inputFrom int64) func(c *nodeCtx) error {
	return func(c *nodeCtx) error {
		x := c.shapeIn(0)
		if c.err != nil {
			c.err = nil
			return nil
		}
		axes, noop := reduceAxes(c, len(x), inputFrom)
		if c.err != nil {
			return c.err
		}
		red := map[int]bool{}
		for _, a := range axes {
			red[a] = true
		}
		keep := c.attrInt("keepdims", 1) != 0
		var out Shape
		for i, d := range x {
			switch {
			case noop || !red[i]:
				out = append(out, d)
			case keep:
				out = append(out, known(1))
			}
		}
		c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
		return nil
	}
}

// reduceRule is the rule of a reduction whose axes become an input at
// opset inputFrom, with derivative d.
func reduceRule(inputFrom int64, d reduceDeriv) opRule {
	return opRule{infer: inferReduce(inputFrom), grad: gradReduce(inputFrom, d)}
}

// reduction is a reduction node seen by its derivative: the input's shape,
// the reduced axes, and gY with those axes kept (size 1, after the class
// axis in Jacobian mode), so that it broadcasts against forward tensors.
type reduction struct {
	c    *gradCtx
	x    Shape
	axes []int
	g    string
}

// reduceDeriv returns a reduction's gX from r.g: the partial derivatives
// ∂y/∂x, computed once per forward batch, times r.g.
type reduceDeriv func(r *reduction) string

// gradReduce reads the axes (re-inserting them into gY when keepdims=0) and
// hands over to d; a reduction over no axes (noop_with_empty_axes) passes
// the gradient through.
func gradReduce(inputFrom int64, d reduceDeriv) func(c *gradCtx) error {
	return func(c *gradCtx) error {
		x := c.shapeIn(0)
		if c.err != nil {
			return c.err
		}
		axes, noop := reduceAxes(&c.nodeCtx, len(x), inputFrom)
		if c.err != nil {
			return c.err
		}
		if noop {
			c.setGrad(0, c.gy[0])
			return nil
		}
		r := &reduction{c: c, x: x, axes: axes, g: c.gy[0]}
		if c.attrInt("keepdims", 1) == 0 {
			r.g = c.op("Unsqueeze", []string{r.g, c.gr.ints(r.shifted(c.off())...)})
		}
		c.setGrad(0, d(r))
		return c.err
	}
}

// shifted returns the reduced axes plus off.
func (r *reduction) shifted(off int) []int64 {
	out := make([]int64, len(r.axes))
	for i, a := range r.axes {
		out[i] = int64(a + off)
	}
	return out
}

// y returns the forward output with the reduced axes kept.
func (r *reduction) y() string {
	c := r.c
	if c.attrInt("keepdims", 1) == 0 {
		return c.op("Unsqueeze", []string{c.output(0), c.gr.ints(r.shifted(0)...)})
	}
	return c.output(0)
}

// reduce applies the reduction op (ReduceSum, ReduceProd) with keepdims=1
// to forward tensor t, its axes given the way the model's opset wants them.
// No gradient rule raises the opset to 18, where the other reductions' axes
// move to an input, so the form read from the model's own opset stays valid.
func (r *reduction) reduce(op, t string) string {
	c := r.c
	keep := attrInt("keepdims", 1)
	if op == "ReduceSum" || c.gr.opset >= 18 {
		return c.op(op, []string{t, c.gr.ints(r.shifted(0)...)}, keep)
	}
	return c.op(op, []string{t}, keep, attrInts("axes", r.shifted(0)))
}

// times multiplies r.g by the forward tensor d, broadcast over the class
// axis and the reduced axes.
func (r *reduction) times(d string) string { return r.c.op("Mul", []string{r.g, d}) }

// https://onnx.ai/onnx/operators/onnx__ReduceSum.html: gX = gY expanded
// over the reduced axes.
func sumDeriv(r *reduction) string {
	return r.c.op("Expand", []string{r.g, r.c.op("Shape", []string{r.c.input(0)})})
}

// https://onnx.ai/onnx/operators/onnx__ReduceMean.html: gY expanded and
// divided by the number of elements each output averages.
func meanDeriv(r *reduction) string {
	c := r.c
	g := c.op("Div", []string{r.g, c.reducedCount(r.x, r.axes)})
	return c.op("Expand", []string{g, c.op("Shape", []string{c.input(0)})})
}

// https://onnx.ai/onnx/operators/onnx__ReduceSumSquare.html: ∂y/∂x = 2x.
func sumSquareDeriv(r *reduction) string {
	return r.times(r.c.op("Mul", []string{r.c.input(0), r.c.scalar(2)}))
}

// https://onnx.ai/onnx/operators/onnx__ReduceL1.html: ∂y/∂x = sign(x)
// (0 at 0, as PyTorch's norm(p=1)).
func l1Deriv(r *reduction) string {
	return r.times(r.c.op("Sign", []string{r.c.input(0)}))
}

// https://onnx.ai/onnx/operators/onnx__ReduceL2.html: ∂y/∂x = x/y, and 0
// where y = 0 (PyTorch's norm backward masks a zero norm the same way).
func l2Deriv(r *reduction) string {
	c := r.c
	y := r.y()
	inv := c.op("Where", []string{c.op("Equal", []string{y, c.scalar(0)}), c.scalar(0), c.op("Reciprocal", []string{y})})
	return r.times(c.op("Mul", []string{c.input(0), inv}))
}

// https://onnx.ai/onnx/operators/onnx__ReduceLogSumExp.html: ∂y/∂x =
// exp(x − y), the softmax over the reduced axes.
func logSumExpDeriv(r *reduction) string {
	c := r.c
	return r.times(c.op("Exp", []string{c.op("Sub", []string{c.input(0), r.y()})}))
}

// extremeDeriv serves https://onnx.ai/onnx/operators/onnx__ReduceMax.html
// and https://onnx.ai/onnx/operators/onnx__ReduceMin.html: gY goes to the
// elements equal to y, shared equally among ties, as torch.amax and
// torch.amin do. (torch.max(x, dim), which also exports as ReduceMax, gives
// all of it to the one element whose index it returns; the two agree
// without ties.)
func extremeDeriv(r *reduction) string {
	c := r.c
	mask := c.toGradElem(c.op("Equal", []string{c.input(0), r.y()}))
	return r.times(c.op("Div", []string{mask, r.reduce("ReduceSum", mask)}))
}

// https://onnx.ai/onnx/operators/onnx__ReduceProd.html: ∂y/∂xᵢ is the
// product of the other elements. Without zeros that is y/xᵢ; zeros are
// handled exactly, as PyTorch's prod_backward does: with p the product of
// the nonzero elements and z the number of zeros in the reduced group,
// ∂y/∂xᵢ = p/xᵢ when z = 0, p at the zero when z = 1 (0 elsewhere), and 0
// everywhere when z ≥ 2.
func prodDeriv(r *reduction) string {
	c := r.c
	x := c.input(0)
	isZero := c.op("Equal", []string{x, c.scalar(0)})
	nonzero := c.op("Where", []string{isZero, c.scalar(1), x})
	p := r.reduce("ReduceProd", nonzero)
	z := r.reduce("ReduceSum", c.toGradElem(isZero))
	oneZero := c.op("And", []string{isZero, c.op("Equal", []string{z, c.scalar(1)})})
	atZero := c.op("Where", []string{oneZero, p, c.scalar(0)})
	d := c.op("Where", []string{c.op("Equal", []string{z, c.scalar(0)}), c.op("Div", []string{p, nonzero}), atZero})
	return r.times(d)
}

// reducedCount is the number of elements each output of a reduction over
// axes of x sums: a constant when those dims are static, else computed from
// the runtime shape (a mean over a symbolic batch axis).
func (c *gradCtx) reducedCount(x Shape, axes []int) string {
	count := 1.0
	var dynamic []int64
	for _, a := range axes {
		if x[a].Known() {
			count *= float64(x[a].Value)
		} else {
			dynamic = append(dynamic, int64(a))
		}
	}
	if len(dynamic) == 0 {
		return c.scalar(count)
	}
	dims := c.op("Gather", []string{c.op("Shape", []string{c.input(0)}), c.gr.ints(dynamic...)}, attrInt("axis", 0))
	n := c.toGradElem(c.op("ReduceProd", []string{dims}, attrInt("keepdims", 0)))
	return c.op("Mul", []string{n, c.scalar(count)})
}
