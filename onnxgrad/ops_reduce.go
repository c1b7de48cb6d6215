package onnxgrad

// Reductions: ReduceSum (axes as input from opset 13) and ReduceMean (axes
// as input from opset 18).

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

// gradReduce spreads gY back over the reduced axes (re-inserting them when
// keepdims=0), divided by the number of reduced elements for a mean.
func gradReduce(inputFrom int64, mean bool) func(c *gradCtx) error {
	return func(c *gradCtx) error {
		x := c.shapeIn(0)
		if c.err != nil {
			return c.err
		}
		axes, noop := reduceAxes(&c.nodeCtx, len(x), inputFrom)
		if c.err != nil {
			return c.err
		}
		g := c.gy[0]
		if noop {
			c.setGrad(0, g)
			return nil
		}
		if c.attrInt("keepdims", 1) == 0 {
			ins := make([]int64, len(axes))
			for i, a := range axes {
				ins[i] = int64(a + c.off())
			}
			g = c.op("Unsqueeze", []string{g, c.gr.ints(ins...)})
		}
		if mean {
			g = c.op("Div", []string{g, c.reducedCount(x, axes)})
		}
		c.setGrad(0, c.op("Expand", []string{g, c.op("Shape", []string{c.input(0)})}))
		return nil
	}
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
	n := c.op("Cast", []string{c.op("ReduceProd", []string{dims}, attrInt("keepdims", 0))}, attrInt("to", int64(c.gradElem())))
	return c.op("Mul", []string{n, c.scalar(count)})
}
