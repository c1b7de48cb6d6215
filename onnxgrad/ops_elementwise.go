package onnxgrad

// Elementwise operators: broadcasting arithmetic and activations.

import (
	"math"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// inferBroadcast: the output has the inputs' type and broadcast shape. For
// small integer tensors with tracked values (shape arithmetic such as
// Mul(Gather(Shape(x)), 2)) the values are computed too, by fold applied
// from left to right over all inputs.
func inferBroadcast(fold func(a, b int64) int64) func(c *nodeCtx) error {
	return func(c *nodeCtx) error {
		var shapes []Shape
		for i := range c.n.GetInput() {
			t := c.in(i)
			if t == nil || !t.hasShape {
				c.setOut(0, &tensorInfo{elem: c.elem()})
				return nil
			}
			shapes = append(shapes, t.shape)
		}
		s, err := broadcastShapes(shapes...)
		if err != nil {
			return c.errorf("%v", err)
		}
		out := &tensorInfo{elem: c.elem(), shape: s, hasShape: true}
		if fold != nil {
			vals := c.in(0).value
			for i := 1; i < len(shapes) && vals != nil; i++ {
				vals = foldValues(vals, c.in(i).value, fold)
			}
			out.value = fitValues(s, vals)
		}
		c.setOut(0, out)
		return nil
	}
}

// foldValues applies f elementwise to tracked integer values, broadcasting a
// single value against many; symbolic operands give unknown results.
func foldValues(a, b []Dim, f func(a, b int64) int64) []Dim {
	if a == nil || b == nil {
		return nil
	}
	return broadcastDims(a, b, func(x, y Dim) Dim {
		if x.Known() && y.Known() {
			return known(f(x.Value, y.Value))
		}
		return unknownDim
	})
}

// broadcastDims applies f elementwise to tracked values, broadcasting a
// single value against many; it returns nil when the lengths do not fit.
func broadcastDims(a, b []Dim, f func(x, y Dim) Dim) []Dim {
	n := max(len(a), len(b))
	if (len(a) != n && len(a) != 1) || (len(b) != n && len(b) != 1) {
		return nil
	}
	out := make([]Dim, n)
	for i := range out {
		out[i] = f(a[min(i, len(a)-1)], b[min(i, len(b)-1)])
	}
	return out
}

// fitValues returns vals if their count is that of a tensor of shape s, nil
// otherwise: the flat folds above only describe broadcasting of a single
// value against a vector, not between two axes ([3,1] against [1,3]).
func fitValues(s Shape, vals []Dim) []Dim {
	if dims, ok := s.Static(); ok && vals != nil && mustElements(dims) == int64(len(vals)) {
		return vals
	}
	return nil
}

// inferSame: one output like input 0.
func inferSame(c *nodeCtx) error {
	c.setOut(0, c.sameAs(0))
	return nil
}

// inferIdentity: Identity and Dropout (inference) pass their input through,
// tracked integer values included; Dropout's optional second output is its
// BOOL mask.
func inferIdentity(c *nodeCtx) error {
	out := c.sameAs(0)
	if t := c.in(0); t != nil && out != nil {
		out.value = t.value
	}
	c.setOut(0, out)
	if c.output(1) != "" && out != nil {
		c.setOut(1, &tensorInfo{elem: onnxpb.TensorProto_BOOL, shape: out.shape, hasShape: out.hasShape})
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Add.html
func gradAdd(c *gradCtx) error {
	y := c.shapeOut(0)
	c.setGrad(0, c.unbroadcast(c.gy[0], y, 0))
	c.setGrad(1, c.unbroadcast(c.gy[0], y, 1))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Sub.html
func gradSub(c *gradCtx) error {
	y := c.shapeOut(0)
	c.setGrad(0, c.unbroadcast(c.gy[0], y, 0))
	if c.need[1] {
		c.setGrad(1, c.unbroadcast(c.op("Neg", []string{c.gy[0]}), y, 1))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Mul.html
func gradMul(c *gradCtx) error {
	y := c.shapeOut(0)
	if c.need[0] {
		c.setGrad(0, c.unbroadcast(c.op("Mul", []string{c.gy[0], c.input(1)}), y, 0))
	}
	if c.need[1] {
		c.setGrad(1, c.unbroadcast(c.op("Mul", []string{c.gy[0], c.input(0)}), y, 1))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Div.html: dA = gY/B, dB = −gY·Y/B.
func gradDiv(c *gradCtx) error {
	y := c.shapeOut(0)
	q := c.op("Div", []string{c.gy[0], c.input(1)})
	if c.need[0] {
		c.setGrad(0, c.unbroadcast(q, y, 0))
	}
	if c.need[1] {
		c.setGrad(1, c.unbroadcast(c.op("Neg", []string{c.op("Mul", []string{q, c.output(0)})}), y, 1))
	}
	return nil
}

// Unary activations: gX = gY · f′, with f′ computed from X and/or Y once
// per forward batch (without the class axis), then broadcast against gY.
func unaryGrad(deriv func(c *gradCtx, x, y string) string) func(c *gradCtx) error {
	return func(c *gradCtx) error {
		c.setGrad(0, c.op("Mul", []string{c.gy[0], deriv(c, c.input(0), c.output(0))}))
		return nil
	}
}

// positiveMask is 1 where x > 0 and 0 elsewhere (gradient 0 at the kink, as
// PyTorch), in the gradient's type.
func positiveMask(c *gradCtx, x string) string {
	return c.toGradElem(c.op("Greater", []string{x, c.scalar(0)}))
}

// https://onnx.ai/onnx/operators/onnx__Relu.html
var gradRelu = unaryGrad(func(c *gradCtx, x, _ string) string { return positiveMask(c, x) })

// https://onnx.ai/onnx/operators/onnx__LeakyRelu.html
var gradLeakyRelu = unaryGrad(func(c *gradCtx, x, _ string) string {
	alpha := float64(c.attrFloat("alpha", 0.01))
	return c.op("Where", []string{c.op("Greater", []string{x, c.scalar(0)}), c.scalar(1), c.scalar(alpha)})
})

// https://onnx.ai/onnx/operators/onnx__Elu.html: f′ = 1 for x > 0, y + α otherwise.
var gradElu = unaryGrad(func(c *gradCtx, x, y string) string {
	alpha := float64(c.attrFloat("alpha", 1))
	return c.op("Where", []string{c.op("Greater", []string{x, c.scalar(0)}), c.scalar(1), c.op("Add", []string{y, c.scalar(alpha)})})
})

// https://onnx.ai/onnx/operators/onnx__Sigmoid.html: f′ = y(1 − y).
var gradSigmoid = unaryGrad(func(c *gradCtx, _, y string) string {
	return c.op("Mul", []string{y, c.op("Sub", []string{c.scalar(1), y})})
})

// https://onnx.ai/onnx/operators/onnx__Tanh.html: f′ = 1 − y².
var gradTanh = unaryGrad(func(c *gradCtx, _, y string) string {
	return c.op("Sub", []string{c.scalar(1), c.op("Mul", []string{y, y})})
})

// https://onnx.ai/onnx/operators/onnx__Exp.html: f′ = y.
var gradExp = unaryGrad(func(_ *gradCtx, _, y string) string { return y })

// https://onnx.ai/onnx/operators/onnx__Log.html: f′ = 1/x.
var gradLog = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Reciprocal", []string{x})
})

// https://onnx.ai/onnx/operators/onnx__Sqrt.html: f′ = 1/(2y).
var gradSqrt = unaryGrad(func(c *gradCtx, _, y string) string {
	return c.op("Reciprocal", []string{c.op("Mul", []string{y, c.scalar(2)})})
})

// https://onnx.ai/onnx/operators/onnx__Softplus.html: f′ = sigmoid(x).
var gradSoftplus = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Sigmoid", []string{x})
})

// https://onnx.ai/onnx/operators/onnx__Abs.html: f′ = sign(x).
var gradAbs = unaryGrad(func(c *gradCtx, x, _ string) string { return c.op("Sign", []string{x}) })

// https://onnx.ai/onnx/operators/onnx__Erf.html: f′ = 2/√π · exp(−x²), for
// GELU as exported by PyTorch.
var gradErf = unaryGrad(func(c *gradCtx, x, _ string) string {
	return c.op("Mul", []string{c.scalar(2 / math.Sqrt(math.Pi)), c.op("Exp", []string{c.op("Neg", []string{c.op("Mul", []string{x, x})})})})
})

// https://onnx.ai/onnx/operators/onnx__Reciprocal.html: f′ = −y².
var gradReciprocal = unaryGrad(func(c *gradCtx, _, y string) string {
	return c.op("Neg", []string{c.op("Mul", []string{y, y})})
})

// https://onnx.ai/onnx/operators/onnx__HardSigmoid.html: f′ = α where
// 0 < αx + β < 1.
var gradHardSigmoid = unaryGrad(func(c *gradCtx, x, _ string) string {
	alpha, beta := float64(c.attrFloat("alpha", 0.2)), float64(c.attrFloat("beta", 0.5))
	z := c.op("Add", []string{c.op("Mul", []string{x, c.scalar(alpha)}), c.scalar(beta)})
	inside := c.op("And", []string{c.op("Greater", []string{z, c.scalar(0)}), c.op("Less", []string{z, c.scalar(1)})})
	return c.op("Mul", []string{c.toGradElem(inside), c.scalar(alpha)})
})

// https://onnx.ai/onnx/operators/onnx__PRelu.html: y = x for x > 0, slope·x
// otherwise, the slope broadcast to x.
func gradPRelu(c *gradCtx) error {
	x, slope := c.input(0), c.input(1)
	pos := c.op("Greater", []string{x, c.scalar(0)})
	if c.need[0] {
		c.setGrad(0, c.op("Mul", []string{c.gy[0], c.op("Where", []string{pos, c.scalar(1), slope})}))
	}
	if c.need[1] {
		neg := c.op("Where", []string{pos, c.scalar(0), x})
		c.setGrad(1, c.unbroadcast(c.op("Mul", []string{c.gy[0], neg}), c.shapeOut(0), 1))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Pow.html: dA = gY·B·A^(B−1),
// dB = gY·Y·ln A (defined for A > 0).
func gradPow(c *gradCtx) error {
	a, b := c.input(0), c.input(1)
	y := c.shapeOut(0)
	if c.need[0] {
		if t := c.in(1); t != nil && t.elem != c.gradElem() {
			b = c.toGradElem(b) // an integer exponent
		}
		d := c.op("Mul", []string{b, c.op("Pow", []string{a, c.op("Sub", []string{b, c.scalar(1)})})})
		c.setGrad(0, c.unbroadcast(c.op("Mul", []string{c.gy[0], d}), y, 0))
	}
	if c.need[1] {
		d := c.op("Mul", []string{c.output(0), c.op("Log", []string{a})})
		c.setGrad(1, c.unbroadcast(c.op("Mul", []string{c.gy[0], d}), y, 1))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Sum.html: every input gets gY,
// summed back over its broadcast axes.
func gradSum(c *gradCtx) error {
	y := c.shapeOut(0)
	for i := range c.n.GetInput() {
		if c.need[i] {
			c.setGrad(i, c.unbroadcast(c.gy[0], y, i))
		}
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Neg.html
func gradNeg(c *gradCtx) error {
	c.setGrad(0, c.op("Neg", []string{c.gy[0]}))
	return nil
}

// Identity, Dropout in inference mode, and Cast between floating-point
// types pass the gradient through (cast back to the input's type).
func gradPass(c *gradCtx) error {
	g := c.gy[0]
	if in, out := c.in(0), c.out(0); in != nil && out != nil && in.elem != out.elem {
		g = c.op("Cast", []string{g}, attrInt("to", int64(in.elem)))
	}
	c.setGrad(0, g)
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Dropout.html: only inference mode,
// where Dropout is the identity.
func gradDropout(c *gradCtx) error {
	if c.input(2) != "" {
		t := c.in(2)
		if t == nil || !t.isConst || len(t.value) != 1 || t.value[0] != known(0) {
			return c.errorf("training_mode must be a constant false; export the model in eval mode")
		}
	}
	return gradPass(c)
}

// https://onnx.ai/onnx/operators/onnx__Cast.html
func inferCast(c *nodeCtx) error {
	c.setOut(0, castInfo(c, onnxpb.TensorProto_DataType(c.attrInt("to", 0))))
	return nil
}

// castInfo describes input 0 cast to type to: its shape, and its tracked
// values when to is an integer type.
func castInfo(c *nodeCtx, to onnxpb.TensorProto_DataType) *tensorInfo {
	out := c.sameAs(0)
	if out != nil {
		out.elem = to
		if t := c.in(0); t.value != nil && !isFloatType(int32(out.elem)) {
			out.value = t.value
		}
	}
	return out
}

// https://onnx.ai/onnx/operators/onnx__Clip.html: the gradient passes where
// min ≤ x ≤ max, given as optional inputs (Clip-6's attributes are turned
// into inputs by the opset upgrade).
func gradClip(c *gradCtx) error {
	x := c.input(0)
	var mask string
	and := func(m string) {
		if mask == "" {
			mask = m
		} else {
			mask = c.op("And", []string{mask, m})
		}
	}
	if lo := c.input(1); lo != "" {
		and(c.op("GreaterOrEqual", []string{x, lo}))
	}
	if hi := c.input(2); hi != "" {
		and(c.op("LessOrEqual", []string{x, hi}))
	}
	if mask == "" {
		c.setGrad(0, c.gy[0])
		return nil
	}
	m := c.toGradElem(mask)
	c.setGrad(0, c.op("Mul", []string{c.gy[0], m}))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__HardSwish.html: y = x·clip(x/6 + ½,
// 0, 1), so f′ = 0 below −3, 1 above 3 and x/3 + ½ between, the inner
// branch taking both ends as in PyTorch's hardswish_backward.
var gradHardSwish = unaryGrad(func(c *gradCtx, x, _ string) string {
	mid := c.op("Add", []string{c.op("Div", []string{x, c.scalar(3)}), c.scalar(0.5)})
	upper := c.op("Where", []string{c.op("Greater", []string{x, c.scalar(3)}), c.scalar(1), mid})
	return c.op("Where", []string{c.op("Less", []string{x, c.scalar(-3)}), c.scalar(0), upper})
})

// https://onnx.ai/onnx/operators/onnx__Selu.html: f′ = γ for x > 0 and
// γα·eˣ = y + γα otherwise (the left branch at 0, as PyTorch).
var gradSelu = unaryGrad(func(c *gradCtx, x, y string) string {
	alpha := float64(c.attrFloat("alpha", 1.67326319217681884765625))
	gamma := float64(c.attrFloat("gamma", 1.05070102214813232421875))
	return c.op("Where", []string{c.op("Greater", []string{x, c.scalar(0)}), c.scalar(gamma), c.op("Add", []string{y, c.scalar(gamma * alpha)})})
})

// https://onnx.ai/onnx/operators/onnx__Softsign.html: y = x/(1 + |x|),
// f′ = 1/(1 + |x|)².
var gradSoftsign = unaryGrad(func(c *gradCtx, x, _ string) string {
	d := c.op("Add", []string{c.scalar(1), c.op("Abs", []string{x})})
	return c.op("Reciprocal", []string{c.op("Mul", []string{d, d})})
})

// https://onnx.ai/onnx/operators/onnx__ThresholdedRelu.html: y = x for
// x > α, else 0; f′ = 1 above α and 0 at or below it.
var gradThresholdedRelu = unaryGrad(func(c *gradCtx, x, _ string) string {
	alpha := float64(c.attrFloat("alpha", 1))
	return c.toGradElem(c.op("Greater", []string{x, c.scalar(alpha)}))
})

// https://onnx.ai/onnx/operators/onnx__CastLike.html: Cast to the element
// type of input 1 (whose values are not used, so it gets no gradient); the
// gradient passes like Cast's.
func inferCastLike(c *nodeCtx) error {
	to := onnxpb.TensorProto_UNDEFINED
	if t := c.in(1); t != nil {
		to = t.elem
	}
	c.setOut(0, castInfo(c, to))
	return nil
}

// gradExtreme is Max's and Min's gradient rule
// (https://onnx.ai/onnx/operators/onnx__Max.html,
// https://onnx.ai/onnx/operators/onnx__Min.html): gY goes to the inputs
// that attain the extreme, summed back over their broadcast axes. Ties
// share it equally (each of the k inputs equal to y gets gY/k), which is
// PyTorch's rule for torch.maximum and torch.minimum generalised to more
// than two inputs; the weights are made once per forward batch.
func gradExtreme(c *gradCtx) error {
	y := c.shapeOut(0)
	if c.err != nil {
		return c.err
	}
	ins := c.n.GetInput()
	if len(ins) == 1 {
		c.setGrad(0, c.gy[0])
		return nil
	}
	masks := make([]string, len(ins))
	for i, in := range ins {
		masks[i] = c.toGradElem(c.op("Equal", []string{in, c.output(0)}))
	}
	count := c.op("Sum", masks)
	for i := range ins {
		if c.need[i] {
			w := c.op("Div", []string{masks[i], count})
			c.setGrad(i, c.unbroadcast(c.op("Mul", []string{c.gy[0], w}), y, i))
		}
	}
	return c.err
}

// https://onnx.ai/onnx/operators/onnx__Mean.html: every input gets gY/n,
// summed back over its broadcast axes.
func gradMean(c *gradCtx) error {
	y := c.shapeOut(0)
	if c.err != nil {
		return c.err
	}
	g := c.gy[0]
	if n := len(c.n.GetInput()); n > 1 {
		g = c.op("Div", []string{g, c.scalar(float64(n))})
	}
	for i := range c.n.GetInput() {
		if c.need[i] {
			c.setGrad(i, c.unbroadcast(g, y, i))
		}
	}
	return c.err
}

// https://onnx.ai/onnx/operators/onnx__Celu.html: y = max(0, x) +
// min(0, α(exp(x/α) − 1)), so f′ = 1 for x > 0 and exp(x/α) = y/α + 1
// otherwise (both 1 at 0: Celu is continuously differentiable).
var gradCelu = unaryGrad(func(c *gradCtx, x, y string) string {
	alpha := float64(c.attrFloat("alpha", 1))
	left := c.op("Add", []string{c.op("Div", []string{y, c.scalar(alpha)}), c.scalar(1)})
	return c.op("Where", []string{c.op("Greater", []string{x, c.scalar(0)}), c.scalar(1), left})
})

// https://onnx.ai/onnx/operators/onnx__Mish.html: y = x·tanh(s) with
// s = softplus(x), so f′ = tanh(s) + x·(1 − tanh²(s))·sigmoid(x).
var gradMish = unaryGrad(func(c *gradCtx, x, _ string) string {
	t := c.op("Tanh", []string{c.op("Softplus", []string{x})})
	sech2 := c.op("Sub", []string{c.scalar(1), c.op("Mul", []string{t, t})})
	return c.op("Add", []string{t, c.op("Mul", []string{x, c.op("Mul", []string{sech2, c.op("Sigmoid", []string{x})})})})
})

// Constants of GELU's tanh approximation: √(2/π) and the cubic coefficient.
const (
	geluTanhScale = 0.7978845608028654
	geluTanhCubic = 0.044715
)

// https://onnx.ai/onnx/operators/onnx__Gelu.html (opset 20). With
// approximate "none", y = x·Φ(x) and f′ = Φ(x) + x·φ(x), Φ and φ the
// standard normal CDF and density; with "tanh", y = ½x(1 + tanh u),
// u = √(2/π)(x + 0.044715x³), and f′ = ½(1 + tanh u) +
// ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²).
func gradGelu(c *gradCtx) error {
	var deriv func(c *gradCtx, x, y string) string
	switch a := c.attrString("approximate", "none"); a {
	case "none":
		deriv = geluDeriv
	case "tanh":
		deriv = geluTanhDeriv
	default:
		return c.errorf("approximate %q is not one of \"none\" and \"tanh\"", a)
	}
	return unaryGrad(deriv)(c)
}

// geluDeriv is Φ(x) + x·φ(x) = ½(1 + erf(x/√2)) + x·exp(−x²/2)/√(2π).
func geluDeriv(c *gradCtx, x, _ string) string {
	cdf := c.op("Mul", []string{c.scalar(0.5), c.op("Add", []string{c.scalar(1), c.op("Erf", []string{c.op("Mul", []string{x, c.scalar(1 / math.Sqrt2)})})})})
	pdf := c.op("Mul", []string{c.scalar(1 / math.Sqrt(2*math.Pi)), c.op("Exp", []string{c.op("Mul", []string{c.op("Mul", []string{x, x}), c.scalar(-0.5)})})})
	return c.op("Add", []string{cdf, c.op("Mul", []string{x, pdf})})
}

// geluTanhDeriv is ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²) with
// t = tanh(√(2/π)(x + 0.044715x³)).
func geluTanhDeriv(c *gradCtx, x, _ string) string {
	x2 := c.op("Mul", []string{x, x})
	u := c.op("Mul", []string{c.scalar(geluTanhScale), c.op("Mul", []string{x, c.op("Add", []string{c.scalar(1), c.op("Mul", []string{x2, c.scalar(geluTanhCubic)})})})})
	t := c.op("Tanh", []string{u})
	du := c.op("Mul", []string{c.scalar(geluTanhScale), c.op("Add", []string{c.scalar(1), c.op("Mul", []string{x2, c.scalar(3 * geluTanhCubic)})})})
	sech2 := c.op("Sub", []string{c.scalar(1), c.op("Mul", []string{t, t})})
	half := c.op("Mul", []string{c.scalar(0.5), c.op("Add", []string{c.scalar(1), t})})
	return c.op("Add", []string{half, c.op("Mul", []string{c.op("Mul", []string{c.scalar(0.5), x}), c.op("Mul", []string{sech2, du})})})
}

// https://onnx.ai/onnx/operators/onnx__Shrink.html: y = x − bias for
// x > λ, x + bias for x < −λ, 0 between, so f′ = 1 outside [−λ, λ] and 0
// inside, the ends included (PyTorch's hardshrink and softshrink backward).
var gradShrink = unaryGrad(func(c *gradCtx, x, _ string) string {
	lambd := float64(c.attrFloat("lambd", 0.5))
	outside := c.op("Greater", []string{c.op("Abs", []string{x}), c.scalar(lambd)})
	return c.toGradElem(outside)
})
