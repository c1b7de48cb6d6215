package onnxgrad

// Normalisation: BatchNormalization (inference), Softmax, LogSoftmax.

// https://onnx.ai/onnx/operators/onnx__BatchNormalization.html
func inferBatchNorm(c *nodeCtx) error {
	if c.attrInt("training_mode", 0) != 0 || len(c.n.GetOutput()) > 1 && c.output(1) != "" {
		return c.errorf("BatchNormalization in training mode is not supported; export the model in eval mode")
	}
	c.setOut(0, c.sameAs(0))
	return nil
}

// gradBatchNorm: with inv = 1/√(var+ε) and Y = (X−mean)·inv·scale + B,
// gX = gY·scale·inv, gScale = Σ gY·(X−mean)·inv, gB = Σ gY,
// gMean = −gB·scale·inv, gVar = −½·Σ gY·(X−mean)·scale·inv³, the sums over
// every axis but the channel axis 1.
func gradBatchNorm(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	r := len(x)
	if r < 2 {
		return c.errorf("input must be [N, C, ...], got %v", x)
	}
	// perChannel reshapes a [C] tensor to broadcast against [N, C, spatial...].
	chShape := []int64{-1}
	for range r - 2 {
		chShape = append(chShape, 1)
	}
	perChannel := func(t string) string { return c.op("Reshape", []string{t, c.gr.ints(chShape...)}) }
	eps := float64(c.attrFloat("epsilon", 1e-5))
	scale, mean, variance := c.input(1), c.input(3), c.input(4)
	inv := c.op("Reciprocal", []string{c.op("Sqrt", []string{c.op("Add", []string{variance, c.scalar(eps)})})})
	scaleInv := c.op("Mul", []string{scale, inv})
	gy := c.gy[0]
	if c.need[0] {
		c.setGrad(0, c.op("Mul", []string{gy, perChannel(scaleInv)}))
	}
	centered := ""
	if c.need[1] || c.need[4] {
		centered = c.op("Sub", []string{c.input(0), perChannel(mean)})
	}
	if c.need[1] {
		c.setGrad(1, c.reduceAllBut(c.op("Mul", []string{gy, c.op("Mul", []string{centered, perChannel(inv)})}), r, 1))
	}
	gb := ""
	if c.need[2] || c.need[3] {
		gb = c.reduceAllBut(gy, r, 1)
	}
	c.setGrad(2, gb)
	if c.need[3] {
		c.setGrad(3, c.op("Neg", []string{c.op("Mul", []string{gb, scaleInv})}))
	}
	if c.need[4] {
		s := c.reduceAllBut(c.op("Mul", []string{gy, centered}), r, 1)
		inv3 := c.op("Mul", []string{inv, c.op("Mul", []string{inv, inv})})
		c.setGrad(4, c.op("Mul", []string{s, c.op("Mul", []string{scale, c.op("Mul", []string{inv3, c.scalar(-0.5)})})}))
	}
	return nil
}

// softmaxAxis returns the Softmax/LogSoftmax axis (opset ≥ 13 semantics:
// one axis, default −1) shifted past the class axis.
func (c *gradCtx) softmaxAxis() string {
	y := c.shapeOut(0)
	a, err := normAxis(c.attrInt("axis", -1), len(y))
	if err != nil {
		c.fail("%v", err)
	}
	return c.gr.ints(int64(a + c.off()))
}

// https://onnx.ai/onnx/operators/onnx__Softmax.html:
// gX = Y·(gY − Σ_axis gY·Y).
func gradSoftmax(c *gradCtx) error {
	y, gy := c.output(0), c.gy[0]
	s := c.op("ReduceSum", []string{c.op("Mul", []string{gy, y}), c.softmaxAxis()}, attrInt("keepdims", 1))
	c.setGrad(0, c.op("Mul", []string{y, c.op("Sub", []string{gy, s})}))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__LogSoftmax.html:
// gX = gY − exp(Y)·Σ_axis gY.
func gradLogSoftmax(c *gradCtx) error {
	y, gy := c.output(0), c.gy[0]
	s := c.op("ReduceSum", []string{gy, c.softmaxAxis()}, attrInt("keepdims", 1))
	c.setGrad(0, c.op("Sub", []string{gy, c.op("Mul", []string{c.op("Exp", []string{y}), s})}))
	return nil
}
