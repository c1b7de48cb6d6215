package onnxgrad

// Matrix products: Gemm and MatMul.

// https://onnx.ai/onnx/operators/onnx__Gemm.html
func inferGemm(c *nodeCtx) error {
	a, b := c.shapeIn(0), c.shapeIn(1)
	if c.err != nil {
		return c.err
	}
	if len(a) != 2 || len(b) != 2 {
		return c.errorf("Gemm needs 2-D A and B, got %v and %v", a, b)
	}
	m, ka, kb, n := a[0], a[1], b[0], b[1]
	if c.attrInt("transA", 0) != 0 {
		m, ka = a[1], a[0]
	}
	if c.attrInt("transB", 0) != 0 {
		kb, n = b[1], b[0]
	}
	if ka.Known() && kb.Known() && ka.Value != kb.Value {
		return c.errorf("Gemm of %v and %v: inner sizes %d and %d differ", a, b, ka.Value, kb.Value)
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: Shape{m, n}, hasShape: true})
	return nil
}

// gradGemm: with A′ = op(A), B′ = op(B), Y = α·A′B′ + βC,
// dA′ = α·gY·B′ᵀ and dB′ = α·A′ᵀ·gY, transposed back where op transposes.
// MatMul rather than Gemm is emitted so that a leading class axis on gY
// broadcasts through.
func gradGemm(c *gradCtx) error {
	alpha := float64(c.attrFloat("alpha", 1))
	beta := float64(c.attrFloat("beta", 1))
	tA, tB := c.attrInt("transA", 0) != 0, c.attrInt("transB", 0) != 0
	gy := c.gy[0]
	if alpha != 1 {
		gy = c.op("Mul", []string{gy, c.scalar(alpha)})
	}
	if c.need[0] {
		bT := c.input(1) // B′ᵀ
		if !tB {
			bT = c.swapLastForward(bT, 2)
		}
		da := c.op("MatMul", []string{gy, bT})
		if tA {
			da = c.swapLast2(da, 2)
		}
		c.setGrad(0, da)
	}
	if c.need[1] {
		aT := c.input(0) // A′ᵀ
		if !tA {
			aT = c.swapLastForward(aT, 2)
		}
		db := c.op("MatMul", []string{aT, gy})
		if tB {
			db = c.swapLast2(db, 2)
		}
		c.setGrad(1, db)
	}
	if c.input(2) != "" && c.need[2] {
		g := c.gy[0]
		if beta != 1 {
			g = c.op("Mul", []string{g, c.scalar(beta)})
		}
		c.setGrad(2, c.unbroadcast(g, c.shapeOut(0), 2))
	}
	return nil
}

// swapLast2 transposes the last two axes of gradient g whose forward tensor
// has the given rank.
func (c *gradCtx) swapLast2(g string, rank int) string {
	r := rank + c.off()
	return c.op("Transpose", []string{g}, attrInts("perm", swapPerm(r, r-1, r-2)))
}

// https://onnx.ai/onnx/operators/onnx__MatMul.html (numpy.matmul semantics)
func inferMatMul(c *nodeCtx) error {
	a, b := c.shapeIn(0), c.shapeIn(1)
	if c.err != nil {
		return c.err
	}
	if len(a) == 0 || len(b) == 0 {
		return c.errorf("MatMul of a scalar")
	}
	a1, b1 := a, b
	if len(a) == 1 {
		a1 = Shape{known(1), a[0]}
	}
	if len(b) == 1 {
		b1 = Shape{b[0], known(1)}
	}
	if ka, kb := a1[len(a1)-1], b1[len(b1)-2]; ka.Known() && kb.Known() && ka.Value != kb.Value {
		return c.errorf("MatMul of %v and %v: inner sizes %d and %d differ", a, b, ka.Value, kb.Value)
	}
	batch, err := broadcastShapes(a1[:len(a1)-2], b1[:len(b1)-2])
	if err != nil {
		return c.errorf("%v", err)
	}
	out := append(Shape{}, batch...)
	if len(a) > 1 {
		out = append(out, a1[len(a1)-2])
	}
	if len(b) > 1 {
		out = append(out, b1[len(b1)-1])
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	return nil
}

// gradMatMul: dA = unbroadcast(gY·Bᵀ), dB = unbroadcast(Aᵀ·gY). A 1-D
// operand is promoted to a matrix as numpy.matmul does (A to [1, K], B to
// [K, 1]), gY with it, and the promoted axis squeezed from its gradient.
func gradMatMul(c *gradCtx) error {
	a, b := c.shapeIn(0), c.shapeIn(1)
	if c.err != nil {
		return c.err
	}
	if len(a) == 1 && len(b) == 1 {
		return c.errorf("the gradient of a 1-D by 1-D MatMul (a dot product) is not supported")
	}
	gy, A, B := c.gy[0], c.input(0), c.input(1)
	pa, pb := a, b
	if len(a) == 1 {
		A = c.op("Unsqueeze", []string{A, c.gr.ints(0)})
		gy = c.op("Unsqueeze", []string{gy, c.gr.ints(-2)})
		pa = Shape{known(1), a[0]}
	}
	if len(b) == 1 {
		B = c.op("Unsqueeze", []string{B, c.gr.ints(1)})
		gy = c.op("Unsqueeze", []string{gy, c.gr.ints(-1)})
		pb = Shape{b[0], known(1)}
	}
	batch, err := broadcastShapes(pa[:len(pa)-2], pb[:len(pb)-2])
	if err != nil {
		return c.errorf("%v", err)
	}
	operandGrad := func(g string, p Shape, oneD bool, squeezeAxis int64, i int) {
		from := append(append(Shape{}, batch...), p[len(p)-2:]...)
		if oneD {
			g = c.op("Squeeze", []string{g, c.gr.ints(squeezeAxis)})
			from = append(append(Shape{}, batch...), c.shapeIn(i)[0])
		}
		c.setGrad(i, c.unbroadcast(g, from, i))
	}
	if c.need[0] {
		operandGrad(c.op("MatMul", []string{gy, c.swapLastForward(B, len(pb))}), pa, len(a) == 1, -2, 0)
	}
	if c.need[1] {
		operandGrad(c.op("MatMul", []string{c.swapLastForward(A, len(pa)), gy}), pb, len(b) == 1, -1, 1)
	}
	return nil
}

// swapLastForward transposes the last two axes of a forward tensor of the
// given rank (no class axis).
func (c *gradCtx) swapLastForward(x string, rank int) string {
	return c.op("Transpose", []string{x}, attrInts("perm", swapPerm(rank, rank-1, rank-2)))
}
