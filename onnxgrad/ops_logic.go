package onnxgrad

// Comparison, logic and selection operators: Equal, Greater, Less,
// GreaterOrEqual, LessOrEqual, Not, And, Or, Xor (shape rules only: their
// BOOL outputs carry no gradient) and Where, whose gradient flows to the two
// selected inputs. On tracked integer values they are constant-folded, so
// that shape chains such as PyTorch's expand(n, -1, -1)
// (Shape → ConstantOfShape → Equal → Where → Expand) reach a static shape.
//
// Booleans are tracked as the values 0 and 1. A named symbol among tracked
// values always stands for a dimension (values are only ever copied from
// shapes, never computed from symbols), so it is known to be non-negative;
// the anonymous "?" may be anything.

import (
	"cmp"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// compareDims returns the sign of a − b when it is certain: both known,
// the same symbol, or a dimension symbol against a negative value.
func compareDims(a, b Dim) (int, bool) {
	switch {
	case a.Known() && b.Known():
		return cmp.Compare(a.Value, b.Value), true
	case sameDim(a, b):
		return 0, true
	case isDimSymbol(a) && b.Known() && b.Value < 0:
		return 1, true
	case a.Known() && a.Value < 0 && isDimSymbol(b):
		return -1, true
	}
	return 0, false
}

// isDimSymbol reports whether d is a symbol known to stand for a dimension.
func isDimSymbol(d Dim) bool { return !d.Known() && d.Param != unknownDim.Param }

func boolDim(b bool) Dim {
	if b {
		return known(1)
	}
	return known(0)
}

// inferCompare: a BOOL output of the broadcast shape; tracked values are
// compared where the order of the operands is certain.
func inferCompare(holds func(sign int) bool) func(c *nodeCtx) error {
	return inferBool(func(x, y Dim) Dim {
		if s, ok := compareDims(x, y); ok {
			return boolDim(holds(s))
		}
		return unknownDim
	})
}

// inferBool: the shape and tracked values of a binary operator with a BOOL
// output (https://onnx.ai/onnx/operators/onnx__Equal.html, Greater, Less,
// GreaterOrEqual, LessOrEqual, And, Or, Xor).
func inferBool(f func(x, y Dim) Dim) func(c *nodeCtx) error {
	return func(c *nodeCtx) error {
		out := &tensorInfo{elem: onnxpb.TensorProto_BOOL}
		a, b := c.in(0), c.in(1)
		if a == nil || b == nil || !a.hasShape || !b.hasShape {
			c.setOut(0, out)
			return nil
		}
		s, err := broadcastShapes(a.shape, b.shape)
		if err != nil {
			return c.errorf("%v", err)
		}
		out.shape, out.hasShape = s, true
		if a.value != nil && b.value != nil {
			out.value = fitValues(s, broadcastDims(a.value, b.value, f))
		}
		c.setOut(0, out)
		return nil
	}
}

// logical applies a boolean function to tracked 0/1 values.
func logical(f func(x, y bool) bool) func(x, y Dim) Dim {
	return func(x, y Dim) Dim {
		if !x.Known() || !y.Known() {
			return unknownDim
		}
		return boolDim(f(x.Value != 0, y.Value != 0))
	}
}

// inferUnaryValues: one output like input 0, its tracked values mapped
// through f (Neg, Abs, Sign and Not on shape tensors).
func inferUnaryValues(f func(Dim) Dim) func(c *nodeCtx) error {
	return func(c *nodeCtx) error {
		out := c.sameAs(0)
		if t := c.in(0); out != nil && t.value != nil {
			out.value = make([]Dim, len(t.value))
			for i, d := range t.value {
				out.value[i] = f(d)
			}
		}
		c.setOut(0, out)
		return nil
	}
}

// negDim, absDim and signDim fold Neg, Abs and Sign; a dimension symbol is
// its own absolute value.
func negDim(d Dim) Dim {
	if d.Known() {
		return known(-d.Value)
	}
	return unknownDim
}

func absDim(d Dim) Dim {
	switch {
	case d.Known():
		return known(max(d.Value, -d.Value))
	case isDimSymbol(d):
		return d
	}
	return unknownDim
}

// notDim folds https://onnx.ai/onnx/operators/onnx__Not.html.
func notDim(d Dim) Dim {
	if !d.Known() {
		return unknownDim
	}
	return boolDim(d.Value == 0)
}

func signDim(d Dim) Dim {
	if d.Known() {
		return known(int64(cmp.Compare(d.Value, 0)))
	}
	return unknownDim
}

// https://onnx.ai/onnx/operators/onnx__Mod.html: integer mod takes the
// divisor's sign (fmod=0), C's fmod the dividend's.
func inferMod(c *nodeCtx) error {
	fmod := c.attrInt("fmod", 0) != 0
	return inferBroadcast(func(a, b int64) int64 {
		if b == 0 {
			return 0
		}
		r := a % b
		if !fmod && r != 0 && (r < 0) != (b < 0) {
			r += b
		}
		return r
	})(c)
}

// https://onnx.ai/onnx/operators/onnx__Where.html: the type of X, the
// broadcast shape of all three inputs; tracked values are selected where
// the condition is known.
func inferWhere(c *nodeCtx) error {
	out := &tensorInfo{elem: onnxpb.TensorProto_UNDEFINED}
	if x := c.in(1); x != nil {
		out.elem = x.elem
	}
	var shapes []Shape
	for i := range 3 {
		t := c.in(i)
		if t == nil || !t.hasShape {
			c.setOut(0, out)
			return nil
		}
		shapes = append(shapes, t.shape)
	}
	s, err := broadcastShapes(shapes...)
	if err != nil {
		return c.errorf("%v", err)
	}
	out.shape, out.hasShape = s, true
	if cond, x, y := c.in(0), c.in(1), c.in(2); cond.value != nil && x.value != nil && y.value != nil {
		out.value = fitValues(s, selectDims(cond.value, x.value, y.value))
	}
	c.setOut(0, out)
	return nil
}

// selectDims folds Where over tracked values: the selected value where the
// condition is known, else the value both branches agree on.
func selectDims(cond, a, b []Dim) []Dim {
	n := max(len(cond), len(a), len(b))
	for _, v := range [][]Dim{cond, a, b} {
		if len(v) != n && len(v) != 1 {
			return nil
		}
	}
	at := func(v []Dim, i int) Dim { return v[min(i, len(v)-1)] }
	out := make([]Dim, n)
	for i := range out {
		c, x, y := at(cond, i), at(a, i), at(b, i)
		switch {
		case c.Known() && c.Value != 0:
			out[i] = x
		case c.Known():
			out[i] = y
		case sameDim(x, y):
			out[i] = x
		default:
			out[i] = unknownDim
		}
	}
	return out
}

// gradWhere (https://onnx.ai/onnx/operators/onnx__Where.html): X receives
// gY where the condition holds, Y where it does not, each summed back over
// its broadcast axes. The condition is not differentiated. The masks are
// float 0/1 tensors made once per forward batch, multiplied into gY (a Mul
// by a float mask is faster than a Where broadcast over the class axis).
func gradWhere(c *gradCtx) error {
	y := c.shapeOut(0)
	if c.err != nil {
		return c.err
	}
	cond := c.input(0)
	if c.need[1] {
		m := c.toGradElem(cond)
		c.setGrad(1, c.unbroadcast(c.op("Mul", []string{c.gy[0], m}), y, 1))
	}
	if c.need[2] {
		m := c.toGradElem(c.op("Not", []string{cond}))
		c.setGrad(2, c.unbroadcast(c.op("Mul", []string{c.gy[0], m}), y, 2))
	}
	return c.err
}
