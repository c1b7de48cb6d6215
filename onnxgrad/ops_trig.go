package onnxgrad

// Trigonometric and hyperbolic functions and their inverses. All are
// elementwise with smooth derivatives on their domains, so each is a
// unaryGrad rule with the shape rule inferSame; a derivative that needs
// another of them (Sin's is Cos) emits that op, which has a shape rule here.

// https://onnx.ai/onnx/operators/onnx__Sin.html: f′ = cos x.
var gradSin = unaryGrad(func(c *gradCtx, x, _ string) string { return c.op("Cos", []string{x}) })

// https://onnx.ai/onnx/operators/onnx__Cos.html: f′ = −sin x.
var gradCos = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Neg", []string{c.op("Sin", []string{x})})
})

// https://onnx.ai/onnx/operators/onnx__Tan.html: f′ = 1 + tan² x = 1 + y².
var gradTan = unaryGrad(func(c *gradCtx, _, y string) string {
	return c.op("Add", []string{c.scalar(1), c.op("Mul", []string{y, y})})
})

// invSqrt returns 1/√(s·x² + t): the derivative of asin (s = −1, t = 1),
// asinh (s = 1, t = 1) and acosh (s = 1, t = −1).
func invSqrt(c *gradCtx, x string, s, t float64) string {
	sq := c.op("Mul", []string{x, x})
	if s < 0 {
		sq = c.op("Neg", []string{sq})
	}
	return c.op("Reciprocal", []string{c.op("Sqrt", []string{c.op("Add", []string{sq, c.scalar(t)})})})
}

// https://onnx.ai/onnx/operators/onnx__Asin.html: f′ = 1/√(1 − x²).
var gradAsin = unaryGrad(func(c *gradCtx, x, _ string) string { return invSqrt(c, x, -1, 1) })

// https://onnx.ai/onnx/operators/onnx__Acos.html: f′ = −1/√(1 − x²).
var gradAcos = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Neg", []string{invSqrt(c, x, -1, 1)})
})

// https://onnx.ai/onnx/operators/onnx__Atan.html: f′ = 1/(1 + x²).
var gradAtan = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Reciprocal", []string{c.op("Add", []string{c.scalar(1), c.op("Mul", []string{x, x})})})
})

// https://onnx.ai/onnx/operators/onnx__Sinh.html: f′ = cosh x.
var gradSinh = unaryGrad(func(c *gradCtx, x, _ string) string { return c.op("Cosh", []string{x}) })

// https://onnx.ai/onnx/operators/onnx__Cosh.html: f′ = sinh x (computed
// directly: √(y² − 1) loses its precision near x = 0).
var gradCosh = unaryGrad(func(c *gradCtx, x, _ string) string { return c.op("Sinh", []string{x}) })

// https://onnx.ai/onnx/operators/onnx__Asinh.html: f′ = 1/√(x² + 1).
var gradAsinh = unaryGrad(func(c *gradCtx, x, _ string) string { return invSqrt(c, x, 1, 1) })

// https://onnx.ai/onnx/operators/onnx__Acosh.html: f′ = 1/√(x² − 1),
// defined for x > 1.
var gradAcosh = unaryGrad(func(c *gradCtx, x, _ string) string { return invSqrt(c, x, 1, -1) })

// https://onnx.ai/onnx/operators/onnx__Atanh.html: f′ = 1/(1 − x²),
// defined for |x| < 1.
var gradAtanh = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Reciprocal", []string{c.op("Sub", []string{c.scalar(1), c.op("Mul", []string{x, x})})})
})
