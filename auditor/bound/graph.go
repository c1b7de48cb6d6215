package bound

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// The bound graph's inputs and output.
const (
	inX     = "x"     // images [N, sample...] float32
	inEps   = "eps"   // radius per image [N]
	inSpec  = "spec"  // specification rows [N, S, K]: e_pred − e_j
	outLow  = "lower" // lower bound of every row's spec·logits [N, S]
	opsetV  = 16      // ScatterElements with reduction=add
	tinyDen = 1e-30
)

// builder writes the bound graph of a Net: CROWN with adaptive lower
// slopes, CROWN itself for the bounds of every Relu and MaxPool input.
// Every linear-bound tensor Λ has the shape [B, S, size] (B the batch or 1,
// S the specification rows, size the values per image of the tensor it
// multiplies), flat per image; Conv and pools fold B·S into the batch for
// their transposed op.
type builder struct {
	net    *Net
	norm   attack.Norm
	lo, hi float64
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	count  int
	// lower and upper name the bounds [N, size] of the Relu/MaxPool inputs.
	lower, upper map[int]string
	// at the input: xl, xu [N, 1, D] the box, x3 [N, 1, D], eps2 [N, 1].
	xl, xu, x3, eps2, batch string
	// one is 1 [1], computed from the batch size, so never constant.
	one string
}

func (b *builder) fresh(hint string) string {
	b.count++
	return fmt.Sprintf("%s_%d", hint, b.count)
}

func (b *builder) op(op string, in []string, attrs ...*onnxpb.AttributeProto) string {
	return b.opN(op, 1, in, attrs...)[0]
}

func (b *builder) opN(op string, nOut int, in []string, attrs ...*onnxpb.AttributeProto) []string {
	outs := make([]string, nOut)
	for i := range outs {
		outs[i] = b.fresh(op)
	}
	b.nodes = append(b.nodes, &onnxpb.NodeProto{Name: proto.String(outs[0]), OpType: proto.String(op), Input: in, Output: outs, Attribute: attrs})
	return outs
}

func (b *builder) floats(hint string, dims []int64, v []float64) string {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	name := b.fresh(hint)
	b.inits = append(b.inits, onnxgrad.NewTensorFloat32(name, dims, f))
	return name
}

func (b *builder) ints(v ...int64) string {
	name := b.fresh("shape")
	b.inits = append(b.inits, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v})
	return name
}

func (b *builder) scalar(v float64) string { return b.floats("c", nil, []float64{v}) }

func aInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func aInts(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func aString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func (b *builder) reshape(x string, dims ...int64) string {
	return b.op("Reshape", []string{x, b.ints(dims...)})
}

func (b *builder) sumLast(x string) string {
	return b.op("ReduceSum", []string{x, b.ints(-1)}, aInt("keepdims", 0))
}

// boundGraph returns the bound graph of net for the norm, the input box
// [lo, hi] and K−1 specification rows.
func boundGraph(net *Net, norm attack.Norm, lo, hi float64) *onnxpb.ModelProto {
	b := &builder{net: net, norm: norm, lo: lo, hi: hi, lower: map[int]string{}, upper: map[int]string{}}
	d := int64(net.Size(0))
	xf := b.reshape(inX, -1, d)
	b.eps2 = b.reshape(inEps, -1, 1)
	b.xl = b.reshape(b.op("Max", []string{b.op("Sub", []string{xf, b.eps2}), b.scalar(lo)}), -1, 1, d)
	b.xu = b.reshape(b.op("Min", []string{b.op("Add", []string{xf, b.eps2}), b.scalar(hi)}), -1, 1, d)
	b.x3 = b.reshape(xf, -1, 1, d)
	b.batch = b.op("Slice", []string{b.op("Shape", []string{xf}), b.ints(0), b.ints(1)})
	b.one = b.op("Cast", []string{b.op("Greater", []string{b.batch, b.ints(0)})}, aInt("to", int64(onnxpb.TensorProto_FLOAT)))
	for _, l := range net.Layers {
		if l.Kind == Relu || l.Kind == MaxPool {
			b.intermediate(l.In[0])
		}
	}
	s := int64(net.Classes - 1)
	low := b.backward(net.Output, inSpec, s)
	b.nodes = append(b.nodes, &onnxpb.NodeProto{Name: proto.String("lower"), OpType: proto.String("Identity"), Input: []string{low}, Output: []string{outLow}})

	vi := func(name string, dims ...any) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: floatTensorType(dims...)}
	}
	xdims := []any{"N"}
	for _, v := range net.Shapes[0] {
		xdims = append(xdims, v)
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opsetV)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("bound"),
			Node:        b.nodes,
			Initializer: b.inits,
			Input:       []*onnxpb.ValueInfoProto{vi(inX, xdims...), vi(inEps, "N"), vi(inSpec, "N", s, int64(net.Classes))},
			Output:      []*onnxpb.ValueInfoProto{vi(outLow, "N", s)},
		},
	}
}

// intermediate adds the CROWN bounds of tensor t: 2n rows, e_i and −e_i.
func (b *builder) intermediate(t int) {
	if _, done := b.lower[t]; done {
		return
	}
	n := int64(b.net.Size(t))
	if chain := b.net.affineChain(t); chain != nil {
		b.lower[t], b.upper[t] = b.affineBounds(chain)
		return
	}
	eye := b.op("EyeLike", []string{b.op("ConstantOfShape", []string{b.ints(n, n)})}, aInt("dtype", int64(onnxpb.TensorProto_FLOAT)))
	rows := b.reshape(b.op("Concat", []string{eye, b.op("Neg", []string{eye})}, aInt("axis", 0)), 1, 2*n, n)
	// Times a 1 that depends on the batch: else onnxruntime's constant
	// folding runs the backward ops on the 2n rows at session creation,
	// slowly (minutes for a small CNN).
	rows = b.op("Mul", []string{rows, b.one})
	low := b.backward(t, rows, 2*n)
	b.lower[t] = b.op("Slice", []string{low, b.ints(0), b.ints(n), b.ints(1)})
	b.upper[t] = b.op("Neg", []string{b.op("Slice", []string{low, b.ints(n), b.ints(2 * n), b.ints(1)})})
}

// affineChain returns the layers from the image to tensor t, in order, if
// they are Scale and Reshape layers around a single Dense or Conv: then t
// is D₂·W·D₁·x + c with diagonal D₁, D₂, and its CROWN bounds need no
// backward pass (see affineBounds). Otherwise it returns nil.
func (n *Net) affineChain(t int) []*Layer {
	var chain []*Layer
	linear := 0
	for t != 0 {
		var producer *Layer
		for i := range n.Layers {
			if n.Layers[i].Out == t {
				producer = &n.Layers[i]
			}
		}
		switch producer.Kind {
		case Dense, Conv:
			linear++
		case Scale, Reshape:
		default:
			return nil
		}
		chain = append([]*Layer{producer}, chain...)
		t = producer.In[0]
	}
	if linear != 1 {
		return nil
	}
	return chain
}

// affineBounds returns the bounds [N, size] of the affine map A·x + c of
// the chain, exactly what CROWN's rows ±e_i give, by forward passes: over
// the box, A·m + c ∓ |A|·r with m and r the box's centre and half-width
// (|A| = |D₂|·|W|·|D₁|); for L2 also over the ball,
// A·x + c ∓ ε·√((A∘A)·1), where A∘A = D₂²·(W∘W)·D₁², keeping the tighter.
func (b *builder) affineBounds(chain []*Layer) (lower, upper string) {
	d := int64(b.net.Size(0))
	half := b.scalar(0.5)
	mid := b.reshape(b.op("Mul", []string{b.op("Add", []string{b.xl, b.xu}), half}), -1, d)
	rad := b.reshape(b.op("Mul", []string{b.op("Sub", []string{b.xu, b.xl}), half}), -1, d)
	centre := b.forward(chain, mid, func(v float64) float64 { return v }, true)
	spread := b.forward(chain, rad, math.Abs, false)
	lower = b.op("Sub", []string{centre, spread})
	upper = b.op("Add", []string{centre, spread})
	if b.norm == attack.LInf {
		return lower, upper
	}
	ones := make([]float64, d)
	for i := range ones {
		ones[i] = 1
	}
	sq := func(v float64) float64 { return v * v }
	norms := b.op("Sqrt", []string{b.forward(chain, b.floats("ones", []int64{1, d}, ones), sq, false)})
	ball := b.op("Mul", []string{b.eps2, norms})
	at := b.forward(chain, b.reshape(b.x3, -1, d), func(v float64) float64 { return v }, true)
	lower = b.op("Max", []string{lower, b.op("Sub", []string{at, ball})})
	upper = b.op("Min", []string{upper, b.op("Add", []string{at, ball})})
	return lower, upper
}

// forward applies the chain to x [B, size(0)], every weight and scale
// passed through f, with the biases and shifts when affine (else the
// linear part alone).
func (b *builder) forward(chain []*Layer, x string, f func(float64) float64, affine bool) string {
	apply := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, w := range v {
			out[i] = f(w)
		}
		return out
	}
	for _, L := range chain {
		is, os := b.net.Shapes[L.In[0]], b.net.Shapes[L.Out]
		switch L.Kind {
		case Scale:
			x = b.op("Mul", []string{x, b.floats("mul", []int64{int64(len(L.Mul))}, apply(L.Mul))})
			if affine {
				x = b.op("Add", []string{x, b.floats("shift", []int64{int64(len(L.Shift))}, L.Shift)})
			}
		case Dense:
			wt := make([]float64, len(L.W))
			rows, cols := int(L.WShape[0]), int(L.WShape[1])
			for i := range rows {
				for j := range cols {
					wt[j*rows+i] = f(L.W[i*cols+j])
				}
			}
			x = b.op("MatMul", []string{x, b.floats("wt", []int64{L.WShape[1], L.WShape[0]}, wt)})
			if affine {
				x = b.op("Add", []string{x, b.floats("b", []int64{L.WShape[0]}, L.B)})
			}
		case Conv:
			in := []string{b.reshape(x, -1, is[0], is[1], is[2]), b.floats("kernel", L.WShape, apply(L.W))}
			if affine {
				in = append(in, b.floats("b", []int64{L.WShape[0]}, L.B))
			}
			x = b.op("Conv", in, aInts("strides", L.Strides), aInts("pads", L.Pads), aInts("dilations", L.Dilate), aInt("group", L.Group))
		}
		x = b.reshape(x, -1, int64(size(os)))
	}
	return x
}

// backward returns the name of a lower bound [N, S] of rows·tensor_t, rows
// [B, S, size(t)].
func (b *builder) backward(t int, rows string, s int64) string {
	var consts []string // [B, S, 1] each
	net := b.net
	visit := func(L *Layer, g string) []string {
		in := L.In[0]
		nin, nout := int64(net.Size(in)), int64(net.Size(L.Out))
		var x string
		switch L.Kind {
		case Dense:
			x = b.op("MatMul", []string{g, b.floats("w", L.WShape, L.W)})
			consts = append(consts, b.op("MatMul", []string{g, b.floats("b", []int64{nout, 1}, L.B)}))
		case Scale:
			x = b.op("Mul", []string{g, b.floats("mul", []int64{nin}, L.Mul)})
			consts = append(consts, b.op("MatMul", []string{g, b.floats("shift", []int64{nout, 1}, L.Shift)}))
		case Reshape:
			x = g
		case Sum:
			return []string{g, g}
		case Relu:
			x = b.relu(in, g, &consts)
		case Conv:
			x = b.convT(L, in, g, s)
			bias := make([]float64, nout)
			per := int(nout) / len(L.B)
			for i := range bias {
				bias[i] = L.B[i/per]
			}
			consts = append(consts, b.op("MatMul", []string{g, b.floats("bias", []int64{nout, 1}, bias)}))
		case AvgPool:
			x = b.avgT(L, in, g, s)
		case MaxPool:
			x = b.maxT(L, in, g, s, &consts)
		}
		return []string{x}
	}
	sum := func(a, c string) string { return b.op("Add", []string{a, c}) }
	low := b.concretise(Backward(net, t, rows, visit, sum))
	for _, c := range consts {
		low = b.op("Add", []string{low, b.reshape(c, -1, s)})
	}
	return low
}

// relu relaxes a Relu whose input t has bounds [l, u]: lower line a·x with
// a = 1 if u ≥ −l else 0 (CROWN's adaptive choice), upper line
// s·(x − l) with s = u/(u − l), for unstable neurons; exact for stable ones.
func (b *builder) relu(t int, g string, consts *[]string) string {
	up := b.op("Relu", []string{b.upper[t]})
	lo := b.op("Min", []string{b.lower[t], b.scalar(0)})
	den := b.op("Max", []string{b.op("Sub", []string{up, lo}), b.scalar(tinyDen)})
	slope := b.op("Div", []string{up, den})
	icpt := b.op("Neg", []string{b.op("Mul", []string{slope, lo})})
	a := b.op("Cast", []string{b.op("GreaterOrEqual", []string{up, b.op("Neg", []string{lo})})}, aInt("to", int64(onnxpb.TensorProto_FLOAT)))
	unsq := func(v string, axis int64) string { return b.op("Unsqueeze", []string{v, b.ints(axis)}) }
	pos := b.op("Relu", []string{g})
	neg := b.op("Min", []string{g, b.scalar(0)})
	*consts = append(*consts, b.op("MatMul", []string{neg, unsq(icpt, 2)}))
	return b.op("Add", []string{b.op("Mul", []string{pos, unsq(a, 1)}), b.op("Mul", []string{neg, unsq(slope, 1)})})
}

// outputPadding returns ConvTranspose's output_padding that restores an
// input of size in along one axis.
func outputPadding(in, k, s, pb, pe, d int64) int64 { return (in + pb + pe - d*(k-1) - 1) % s }

// convT multiplies Λ [B, S, M·Ho·Wo] by the convolution's matrix: a
// ConvTranspose over the folded rows.
func (b *builder) convT(L *Layer, in int, g string, s int64) string {
	is, os := b.net.Shapes[in], b.net.Shapes[L.Out]
	op := []int64{
		outputPadding(is[1], L.WShape[2], L.Strides[0], L.Pads[0], L.Pads[2], L.Dilate[0]),
		outputPadding(is[2], L.WShape[3], L.Strides[1], L.Pads[1], L.Pads[3], L.Dilate[1]),
	}
	folded := b.reshape(g, -1, os[0], os[1], os[2])
	y := b.op("ConvTranspose", []string{folded, b.floats("kernel", L.WShape, L.W)},
		aInts("strides", L.Strides), aInts("pads", L.Pads), aInts("dilations", L.Dilate), aInt("group", L.Group), aInts("output_padding", op))
	return b.reshape(y, -1, s, int64(size(is)))
}

// avgT multiplies Λ by an average pooling's matrix: Λ divided by each
// window's count, spread over the window by a ConvTranspose with a kernel
// of ones.
func (b *builder) avgT(L *Layer, in int, g string, s int64) string {
	is, os := b.net.Shapes[in], b.net.Shapes[L.Out]
	counts := make([]float64, os[1]*os[2])
	for oh := range os[1] {
		for ow := range os[2] {
			c := L.Kernel[0] * L.Kernel[1]
			if !L.CountPad {
				rows := min(oh*L.Strides[0]-L.Pads[0]+L.Kernel[0], is[1]) - max(oh*L.Strides[0]-L.Pads[0], 0)
				cols := min(ow*L.Strides[1]-L.Pads[1]+L.Kernel[1], is[2]) - max(ow*L.Strides[1]-L.Pads[1], 0)
				c = rows * cols
			}
			counts[oh*os[2]+ow] = 1 / float64(c)
		}
	}
	ones := make([]float64, L.Kernel[0]*L.Kernel[1])
	for i := range ones {
		ones[i] = 1
	}
	folded := b.op("Mul", []string{b.reshape(g, -1, 1, os[1], os[2]), b.floats("count", []int64{1, 1, os[1], os[2]}, counts)})
	op := []int64{
		outputPadding(is[1], L.Kernel[0], L.Strides[0], L.Pads[0], L.Pads[2], 1),
		outputPadding(is[2], L.Kernel[1], L.Strides[1], L.Pads[1], L.Pads[3], 1),
	}
	y := b.op("ConvTranspose", []string{folded, b.floats("ones", []int64{1, 1, L.Kernel[0], L.Kernel[1]}, ones)},
		aInts("strides", L.Strides), aInts("pads", L.Pads), aInts("output_padding", op))
	return b.reshape(y, -1, s, int64(size(is)))
}

// maxT relaxes a MaxPool (DeepPoly): max ≥ x_j with j the window's input
// of largest lower bound, and max ≤ the window's largest upper bound (a
// constant) — or max = x_j where l_j ≥ u_i for every other input i of a
// window that overlaps no other (kernel = stride, no padding; the test
// masks j out of the window). Positive entries of Λ, and all of a stable
// window's, go to x_j (a scatter by the indices of MaxPool over the lower
// bounds); the other negative ones to the constant.
func (b *builder) maxT(L *Layer, in int, g string, s int64, consts *[]string) string {
	is := b.net.Shapes[in]
	nin, nout := int64(size(is)), int64(b.net.Size(L.Out))
	attrs := []*onnxpb.AttributeProto{aInts("kernel_shape", L.Kernel), aInts("strides", L.Strides), aInts("pads", L.Pads)}
	spatial := func(v string) string { return b.reshape(v, -1, is[0], is[1], is[2]) }
	pooled := b.opN("MaxPool", 2, []string{spatial(b.lower[in])}, attrs...)
	top := b.op("MaxPool", []string{spatial(b.upper[in])}, attrs...)
	local := b.reshape(b.op("Mod", []string{pooled[1], b.ints(nin)}), -1, 1, nout)
	neg := b.op("Min", []string{g, b.scalar(0)})
	pos := b.op("Relu", []string{g})
	zero := func(shape string) string {
		return b.op("ConstantOfShape", []string{shape},
			&onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: onnxgrad.NewTensorFloat32("zero", []int64{1}, []float32{0})})
	}
	loose := neg // the negative entries bounded by the constant
	if L.Tiles() {
		flat := b.reshape(local, -1, nout)
		ones := b.op("Expand", []string{b.scalar(1), b.op("Shape", []string{flat})})
		chosen := b.op("ScatterElements", []string{zero(b.op("Concat", []string{b.batch, b.ints(nin)}, aInt("axis", 0))), flat, ones}, aInt("axis", 1))
		others := b.op("Sub", []string{b.upper[in], b.op("Mul", []string{chosen, b.scalar(1e30)})})
		rival := b.op("MaxPool", []string{spatial(others)}, attrs...)
		stable := b.reshape(b.op("Cast", []string{b.op("GreaterOrEqual", []string{pooled[0], rival})}, aInt("to", int64(onnxpb.TensorProto_FLOAT))), -1, 1, nout)
		exact := b.op("Mul", []string{neg, stable})
		pos = b.op("Add", []string{pos, exact})
		loose = b.op("Sub", []string{neg, exact})
	}
	full := b.op("Concat", []string{b.batch, b.ints(s, nout)}, aInt("axis", 0))
	x := b.op("ScatterElements", []string{zero(b.op("Concat", []string{b.batch, b.ints(s, nin)}, aInt("axis", 0))),
		b.op("Expand", []string{local, full}), b.op("Expand", []string{pos, full})}, aInt("axis", 2), aString("reduction", "add"))
	*consts = append(*consts, b.op("MatMul", []string{loose, b.reshape(top, -1, nout, 1)}))
	return x
}

// concretise returns the minimum [N, S] of Λ·x over the ball (see
// Certifier.Lower for L2's box).
func (b *builder) concretise(a string) string {
	pos := b.op("Relu", []string{a})
	neg := b.op("Min", []string{a, b.scalar(0)})
	box := b.sumLast(b.op("Add", []string{b.op("Mul", []string{pos, b.xl}), b.op("Mul", []string{neg, b.xu})}))
	if b.norm == attack.LInf {
		return box
	}
	dot := b.sumLast(b.op("Mul", []string{a, b.x3}))
	l2 := b.op("Sqrt", []string{b.sumLast(b.op("Mul", []string{a, a}))})
	ball := b.op("Sub", []string{dot, b.op("Mul", []string{b.eps2, l2})})
	return b.op("Max", []string{box, ball})
}

// floatTensorType is the type of a float tensor of dims, each a symbolic
// dimension (string) or a size (int64).
func floatTensorType(dims ...any) *onnxpb.TypeProto {
	var sd []*onnxpb.TensorShapeProto_Dimension
	for _, d := range dims {
		switch d := d.(type) {
		case string:
			sd = append(sd, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		case int64:
			sd = append(sd, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: sd}}}}
}
