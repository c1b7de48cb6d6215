package bound

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Kind is what a [Layer] computes.
type Kind int

const (
	// Dense is y = W x + b over the flattened input (Gemm, MatMul with a
	// constant weight).
	Dense Kind = iota
	// Conv is a 2-D convolution with bias (Conv).
	Conv
	// Scale is the elementwise affine map y = Mul⊙x + Shift (BatchNormalization
	// in inference mode, and Add, Sub, Mul, Div by a constant, such as the
	// normalisation in front of a classifier).
	Scale
	// Relu is max(x, 0).
	Relu
	// MaxPool is a 2-D max pooling, relaxed (see the package documentation).
	MaxPool
	// AvgPool is a 2-D average pooling (AveragePool, GlobalAveragePool).
	AvgPool
	// Sum adds two tensors of the same shape (Add of two branches).
	Sum
	// Reshape changes the shape, keeping the values in row-major order
	// (Flatten, Reshape, Identity, Dropout).
	Reshape
)

var kindNames = [...]string{"Dense", "Conv", "Scale", "Relu", "MaxPool", "AvgPool", "Sum", "Reshape"}

func (k Kind) String() string { return kindNames[k] }

// Layer is one node of a [Net]: it reads the tensors In (indices into
// Net.Shapes, 0 being the image) and writes the tensor Out. Shapes are per
// image, without the batch dimension.
type Layer struct {
	Kind Kind
	// Node names the ONNX node it came from, for errors.
	Node string
	In   []int
	Out  int
	// W and B: Dense weight [out, in] row-major and bias [out]; Conv weight
	// [M, C/group, kh, kw] and bias [M]. Scale: Mul and Shift, one value per
	// element of the tensor.
	W, B    []float64
	WShape  []int64
	Mul     []float64
	Shift   []float64
	Group   int64
	Kernel  []int64 // kh, kw: pools (Conv reads WShape)
	Strides []int64 // sh, sw
	Pads    []int64 // top, left, bottom, right
	Dilate  []int64 // dh, dw
	// CountPad says whether an AvgPool divides by the full window even where
	// it overlaps the padding.
	CountPad bool
}

// Tiles reports whether the windows of a pooling layer tile its input
// without overlap or padding (kernel = stride, no pads), where a MaxPool
// whose window is dominated by one input is bounded exactly.
func (l *Layer) Tiles() bool {
	return l.Kernel[0] == l.Strides[0] && l.Kernel[1] == l.Strides[1] && l.Pads[0] == 0 && l.Pads[1] == 0 && l.Pads[2] == 0 && l.Pads[3] == 0
}

// Net is a classifier as bound propagation sees it: a directed acyclic
// graph of [Layer]s in topological order from the image (tensor 0) to the
// class logits (tensor Output).
type Net struct {
	// Shapes holds every tensor's shape per image.
	Shapes [][]int64
	Layers []Layer
	Output int
	// Classes is the number of logits.
	Classes int
}

// Size returns the number of values per image of tensor t.
func (n *Net) Size(t int) int { return size(n.Shapes[t]) }

func size(s []int64) int {
	p := 1
	for _, d := range s {
		p *= int(d)
	}
	return p
}

// Backward carries a linear bound from tensor t back to the image: layers
// are visited in reverse topological order, each whose output has a bound
// (rows on t, to start) mapping it to one bound per input (visit), and
// bounds on a tensor that feeds several layers are summed (add). It
// returns the bound on the image. The ONNX graphs and the float64
// reference (bench/bound/crownref) share it.
func Backward[T any](n *Net, t int, rows T, visit func(l *Layer, g T) []T, add func(a, b T) T) T {
	lam := map[int]T{t: rows}
	for i := len(n.Layers) - 1; i >= 0; i-- {
		l := &n.Layers[i]
		g, ok := lam[l.Out]
		if !ok {
			continue
		}
		delete(lam, l.Out)
		for j, x := range visit(l, g) {
			if old, ok := lam[l.In[j]]; ok {
				x = add(old, x)
			}
			lam[l.In[j]] = x
		}
	}
	return lam[0]
}

// UnsupportedError says that a node of a model cannot be bounded.
type UnsupportedError struct {
	Model, Node, Op string
	Reason          string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("bound: %s: node %q: op %s: %s", e.Model, e.Node, e.Op, e.Reason)
}

// shapeOps compute tensor shapes (as PyTorch's x.view(x.size(0), -1) does)
// and are not bounded: their results may only feed other shape ops or a
// Reshape's target.
var shapeOps = map[string]bool{"Shape": true, "Gather": true, "Unsqueeze": true, "Concat": true, "Squeeze": true, "Cast": true, "Slice": true}

// Parse reads m, a classifier with one image input [N, sample...] and one
// output of class scores [N, K] (as [attack.Classifier.Model] returns it),
// into a Net. A final Softmax or LogSoftmax is dropped: it changes no logit
// difference's sign (LogSoftmax none of their values). Any op outside the
// supported set is an *UnsupportedError naming it and its node.
func Parse(m *onnxpb.ModelProto, name string) (*Net, error) {
	g := m.GetGraph()
	consts := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		consts[t.GetName()] = t
	}
	var image *onnxpb.ValueInfoProto
	for _, vi := range g.GetInput() {
		if _, ok := consts[vi.GetName()]; !ok {
			if image != nil {
				return nil, fmt.Errorf("bound: %s: the model has more than one input besides its initializers", name)
			}
			image = vi
		}
	}
	if image == nil || len(g.GetOutput()) != 1 {
		return nil, fmt.Errorf("bound: %s: want one image input and one output", name)
	}
	var sample []int64
	dims := image.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) < 2 {
		return nil, fmt.Errorf("bound: %s: input %q has rank %d; want a batch of images", name, image.GetName(), len(dims))
	}
	for _, d := range dims[1:] {
		if d.GetDimValue() <= 0 {
			return nil, fmt.Errorf("bound: %s: input %q has no fixed image size", name, image.GetName())
		}
		sample = append(sample, d.GetDimValue())
	}
	net := &Net{Shapes: [][]int64{sample}}
	tensor := map[string]int{image.GetName(): 0}
	shapeOnly := map[string]bool{}
	p := &parser{name: name, consts: consts}

	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if op == "Constant" {
			for _, a := range n.GetAttribute() {
				if a.GetName() == "value" && a.GetT() != nil {
					t := a.GetT()
					consts[n.GetOutput()[0]] = t
				}
			}
			if consts[n.GetOutput()[0]] == nil {
				return nil, p.unsupported(n, "a Constant without a tensor value")
			}
			continue
		}
		var data []int
		readsShape := false
		for _, in := range n.GetInput() {
			if t, ok := tensor[in]; ok {
				data = append(data, t)
			}
			readsShape = readsShape || shapeOnly[in]
		}
		switch {
		case op == "Shape" || (shapeOps[op] && len(data) == 0):
			for _, o := range n.GetOutput() {
				shapeOnly[o] = true
			}
			continue
		case len(data) == 0:
			return nil, p.unsupported(n, "reads no tensor computed from the image")
		}
		if p.domain(n) {
			return nil, p.unsupported(n, "not in the default ONNX domain")
		}
		l, out, err := p.layer(n, op, data, net, readsShape, n.GetOutput()[0] == g.GetOutput()[0].GetName())
		if err != nil {
			return nil, err
		}
		if l == nil { // a pass-through
			tensor[n.GetOutput()[0]] = data[0]
			continue
		}
		net.Shapes = append(net.Shapes, out)
		l.Out = len(net.Shapes) - 1
		l.Node = n.GetName()
		net.Layers = append(net.Layers, *l)
		tensor[n.GetOutput()[0]] = l.Out
	}
	o, ok := tensor[g.GetOutput()[0].GetName()]
	if !ok {
		return nil, fmt.Errorf("bound: %s: the output %q is not computed from the image", name, g.GetOutput()[0].GetName())
	}
	if s := net.Shapes[o]; len(s) != 1 {
		return nil, fmt.Errorf("bound: %s: the output has shape %v per image; want class scores [K]", name, s)
	}
	net.Output, net.Classes = o, int(net.Shapes[o][0])
	return net, nil
}

type parser struct {
	name   string
	consts map[string]*onnxpb.TensorProto
}

func (p *parser) unsupported(n *onnxpb.NodeProto, format string, args ...any) error {
	return &UnsupportedError{Model: p.name, Node: n.GetName(), Op: n.GetOpType(), Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) domain(n *onnxpb.NodeProto) bool {
	d := n.GetDomain()
	return d != "" && d != "ai.onnx"
}

// floats returns the constant input i of n as float64 values and its dims.
func (p *parser) floats(n *onnxpb.NodeProto, i int) ([]float64, []int64, error) {
	if i >= len(n.GetInput()) || n.GetInput()[i] == "" {
		return nil, nil, nil
	}
	t, ok := p.consts[n.GetInput()[i]]
	if !ok {
		return nil, nil, p.unsupported(n, "input %d (%q) is neither a constant nor computed from the image", i, n.GetInput()[i])
	}
	var vals []float64
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		f, err := onnxgrad.TensorFloat32(t)
		if err != nil {
			return nil, nil, p.unsupported(n, "%v", err)
		}
		vals = make([]float64, len(f))
		for j, v := range f {
			vals[j] = float64(v)
		}
	case onnxpb.TensorProto_DOUBLE:
		vals = slices.Clone(t.GetDoubleData())
		if raw := t.GetRawData(); raw != nil {
			vals = make([]float64, len(raw)/8)
			for j := range vals {
				vals[j] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*j:]))
			}
		}
	default:
		return nil, nil, p.unsupported(n, "constant %q is not float32 or float64", t.GetName())
	}
	if size(t.GetDims()) != len(vals) {
		return nil, nil, p.unsupported(n, "constant %q has %d values for dims %v", t.GetName(), len(vals), t.GetDims())
	}
	return vals, slices.Clone(t.GetDims()), nil
}

// ints returns the constant integer input i of n.
func (p *parser) ints(n *onnxpb.NodeProto, i int) ([]int64, bool) {
	if i >= len(n.GetInput()) {
		return nil, false
	}
	t, ok := p.consts[n.GetInput()[i]]
	if !ok {
		return nil, false
	}
	if onnxpb.TensorProto_DataType(t.GetDataType()) != onnxpb.TensorProto_INT64 {
		return nil, false
	}
	if raw := t.GetRawData(); raw != nil {
		out := make([]int64, len(raw)/8)
		for j := range out {
			out[j] = int64(binary.LittleEndian.Uint64(raw[8*j:]))
		}
		return out, true
	}
	return slices.Clone(t.GetInt64Data()), true
}

func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrInts(n *onnxpb.NodeProto, name string, def []int64) []int64 {
	if a := attr(n, name); a != nil {
		return slices.Clone(a.GetInts())
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float64) float64 {
	if a := attr(n, name); a != nil {
		return float64(a.GetF())
	}
	return def
}

// layer turns node n (op, reading the net's tensors data) into a Layer and
// its output shape; a nil Layer means n passes its first input through.
// final says whether n writes the model's output.
func (p *parser) layer(n *onnxpb.NodeProto, op string, data []int, net *Net, readsShape, final bool) (*Layer, []int64, error) {
	in := net.Shapes[data[0]]
	switch op {
	case "Identity", "Dropout":
		return nil, nil, nil
	case "Softmax", "LogSoftmax":
		if !final {
			return nil, nil, p.unsupported(n, "only a final Softmax or LogSoftmax, whose output is the model's, is supported")
		}
		return nil, nil, nil
	case "Relu":
		return &Layer{Kind: Relu, In: data[:1]}, slices.Clone(in), nil
	case "Flatten":
		if attrInt(n, "axis", 1) != 1 {
			return nil, nil, p.unsupported(n, "axis %d; only 1 keeps the batch apart", attrInt(n, "axis", 1))
		}
		return &Layer{Kind: Reshape, In: data[:1]}, []int64{int64(size(in))}, nil
	case "Reshape":
		target, ok := p.ints(n, 1)
		if !ok {
			// A target computed from Shape: PyTorch's x.view(x.size(0), -1).
			if !readsShape {
				return nil, nil, p.unsupported(n, "the target shape is neither constant nor computed by shape ops")
			}
			return &Layer{Kind: Reshape, In: data[:1]}, []int64{int64(size(in))}, nil
		}
		out, err := reshapeTarget(in, target)
		if err != nil {
			return nil, nil, p.unsupported(n, "%v", err)
		}
		return &Layer{Kind: Reshape, In: data[:1]}, out, nil
	case "Gemm":
		return p.gemm(n, data, in)
	case "MatMul":
		if len(data) != 1 || len(in) != 1 {
			return nil, nil, p.unsupported(n, "only x·W with a constant 2-D W on a flat input is supported")
		}
		w, dims, err := p.floats(n, 1)
		if err != nil || len(dims) != 2 || dims[0] != in[0] || n.GetInput()[1] == n.GetInput()[0] {
			return nil, nil, p.unsupported(n, "want a constant weight [%d, out] as the second input", in[0])
		}
		rows, cols := int(dims[0]), int(dims[1])
		wt := make([]float64, len(w))
		for i := range rows {
			for j := range cols {
				wt[j*rows+i] = w[i*cols+j]
			}
		}
		return &Layer{Kind: Dense, In: data[:1], W: wt, WShape: []int64{dims[1], dims[0]}, B: make([]float64, cols)}, []int64{dims[1]}, nil
	case "Conv":
		return p.conv(n, data, in)
	case "MaxPool", "AveragePool":
		return p.pool(n, op, data, in)
	case "GlobalAveragePool":
		if len(in) != 3 {
			return nil, nil, p.unsupported(n, "input of rank %d per image; want [C, H, W]", len(in))
		}
		return &Layer{Kind: AvgPool, In: data[:1], Kernel: []int64{in[1], in[2]}, Strides: []int64{1, 1}, Pads: []int64{0, 0, 0, 0}}, []int64{in[0], 1, 1}, nil
	case "BatchNormalization":
		if len(in) < 1 || len(n.GetOutput()) > 1 && n.GetOutput()[1] != "" {
			return nil, nil, p.unsupported(n, "training mode")
		}
		var vals [4][]float64
		for i := range 4 {
			v, _, err := p.floats(n, i+1)
			if err != nil {
				return nil, nil, err
			}
			if len(v) != int(in[0]) {
				return nil, nil, p.unsupported(n, "%d values in input %d for %d channels", len(v), i+1, in[0])
			}
			vals[i] = v
		}
		eps := attrFloat(n, "epsilon", 1e-5)
		mul, shift := make([]float64, size(in)), make([]float64, size(in))
		per := size(in) / int(in[0])
		for c := range int(in[0]) {
			s := vals[0][c] / math.Sqrt(vals[3][c]+eps)
			for j := range per {
				mul[c*per+j] = s
				shift[c*per+j] = vals[1][c] - s*vals[2][c]
			}
		}
		return &Layer{Kind: Scale, In: data[:1], Mul: mul, Shift: shift}, slices.Clone(in), nil
	case "Add", "Sub", "Mul", "Div":
		return p.elementwise(n, op, data, net)
	}
	return nil, nil, p.unsupported(n, "not supported by bound propagation (supported: Gemm, MatMul, Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Flatten, Reshape, Add, Sub, Mul, Div by constants, Identity, Dropout, a final Softmax/LogSoftmax)")
}

func reshapeTarget(in, target []int64) ([]int64, error) {
	if len(target) == 0 {
		return nil, fmt.Errorf("empty target shape")
	}
	out := slices.Clone(target[1:])
	free, known := -1, 1
	for i, d := range out {
		switch {
		case d == -1 && free < 0:
			free = i
		case d == 0 && i+1 < len(in)+1:
			out[i] = in[i]
			known *= int(in[i])
		case d > 0:
			known *= int(d)
		default:
			return nil, fmt.Errorf("target shape %v", target)
		}
	}
	if free >= 0 {
		out[free] = int64(size(in) / known)
		known *= int(out[free])
	}
	if known != size(in) || (target[0] != -1 && target[0] != 0 && target[0] <= 0) {
		return nil, fmt.Errorf("target shape %v does not keep the batch apart from %v", target, in)
	}
	return out, nil
}

func (p *parser) gemm(n *onnxpb.NodeProto, data []int, in []int64) (*Layer, []int64, error) {
	if len(data) != 1 || len(in) != 1 || attrInt(n, "transA", 0) != 0 {
		return nil, nil, p.unsupported(n, "only Gemm(x, W, b) with transA=0 on a flat input is supported")
	}
	if _, isData := p.consts[n.GetInput()[0]]; isData {
		return nil, nil, p.unsupported(n, "the image must be the first operand")
	}
	w, dims, err := p.floats(n, 1)
	if err != nil {
		return nil, nil, err
	}
	if len(dims) != 2 {
		return nil, nil, p.unsupported(n, "weight of rank %d", len(dims))
	}
	alpha, beta := attrFloat(n, "alpha", 1), attrFloat(n, "beta", 1)
	rows, cols := int(dims[0]), int(dims[1])
	var W []float64
	var out, inSize int
	if attrInt(n, "transB", 0) == 1 {
		out, inSize = rows, cols
		W = w
	} else {
		out, inSize = cols, rows
		W = make([]float64, len(w))
		for i := range rows {
			for j := range cols {
				W[j*rows+i] = w[i*cols+j]
			}
		}
	}
	if inSize != int(in[0]) {
		return nil, nil, p.unsupported(n, "weight %v does not fit an input of %d values", dims, in[0])
	}
	for i := range W {
		W[i] *= alpha
	}
	b := make([]float64, out)
	if c, cd, err := p.floats(n, 2); err != nil {
		return nil, nil, err
	} else if c != nil {
		switch {
		case len(c) == 1:
			for i := range b {
				b[i] = beta * c[0]
			}
		case len(c) == out && (len(cd) == 1 || cd[0] == 1):
			for i := range b {
				b[i] = beta * c[i]
			}
		default:
			return nil, nil, p.unsupported(n, "bias of dims %v", cd)
		}
	}
	return &Layer{Kind: Dense, In: data, W: W, WShape: []int64{int64(out), int64(inSize)}, B: b}, []int64{int64(out)}, nil
}

// pads2 returns the explicit pads [top, left, bottom, right] of a 2-D
// window op, or an error for an auto_pad other than NOTSET and VALID.
func (p *parser) pads2(n *onnxpb.NodeProto) ([]int64, error) {
	switch a := attr(n, "auto_pad"); {
	case a == nil || string(a.GetS()) == "NOTSET":
		return attrInts(n, "pads", []int64{0, 0, 0, 0}), nil
	case string(a.GetS()) == "VALID":
		return []int64{0, 0, 0, 0}, nil
	default:
		return nil, p.unsupported(n, "auto_pad %s; export with explicit pads", a.GetS())
	}
}

func outSize(in, k, s, pb, pe, d int64) int64 { return (in+pb+pe-d*(k-1)-1)/s + 1 }

func (p *parser) conv(n *onnxpb.NodeProto, data []int, in []int64) (*Layer, []int64, error) {
	if len(in) != 3 || len(data) != 1 {
		return nil, nil, p.unsupported(n, "only 2-D convolutions of the image path by a constant kernel are supported")
	}
	w, dims, err := p.floats(n, 1)
	if err != nil {
		return nil, nil, err
	}
	group := attrInt(n, "group", 1)
	if len(dims) != 4 || dims[1]*group != in[0] {
		return nil, nil, p.unsupported(n, "kernel %v, group %d for %d input channels", dims, group, in[0])
	}
	b, _, err := p.floats(n, 2)
	if err != nil {
		return nil, nil, err
	}
	if b == nil {
		b = make([]float64, dims[0])
	}
	pads, err := p.pads2(n)
	if err != nil {
		return nil, nil, err
	}
	if group <= 0 || dims[0]%group != 0 || len(b) != int(dims[0]) {
		return nil, nil, p.unsupported(n, "kernel %v, group %d, %d biases", dims, group, len(b))
	}
	l := &Layer{Kind: Conv, In: data, W: w, WShape: dims, B: b, Group: group, Pads: pads,
		Strides: attrInts(n, "strides", []int64{1, 1}), Dilate: attrInts(n, "dilations", []int64{1, 1})}
	return p.window(n, l, in, dims[0], dims[2:])
}

func (p *parser) pool(n *onnxpb.NodeProto, op string, data []int, in []int64) (*Layer, []int64, error) {
	if len(in) != 3 {
		return nil, nil, p.unsupported(n, "only 2-D pooling is supported")
	}
	if attrInt(n, "ceil_mode", 0) != 0 {
		return nil, nil, p.unsupported(n, "ceil_mode 1")
	}
	if len(n.GetOutput()) > 1 && n.GetOutput()[1] != "" {
		return nil, nil, p.unsupported(n, "the Indices output")
	}
	if d := attrInts(n, "dilations", []int64{1, 1}); d[0] != 1 || d[1] != 1 {
		return nil, nil, p.unsupported(n, "dilations %v", d)
	}
	pads, err := p.pads2(n)
	if err != nil {
		return nil, nil, err
	}
	k := attrInts(n, "kernel_shape", nil)
	if len(k) != 2 {
		return nil, nil, p.unsupported(n, "kernel_shape %v", k)
	}
	l := &Layer{Kind: MaxPool, In: data, Kernel: k, Strides: attrInts(n, "strides", []int64{1, 1}), Pads: pads, Dilate: []int64{1, 1}}
	if op == "AveragePool" {
		l.Kind, l.CountPad = AvgPool, attrInt(n, "count_include_pad", 0) == 1
	}
	return p.window(n, l, in, in[0], k)
}

// window checks the attributes of a 2-D window op l (kernel k, input in per
// image, c output channels) and returns it with its output shape.
func (p *parser) window(n *onnxpb.NodeProto, l *Layer, in []int64, c int64, k []int64) (*Layer, []int64, error) {
	ok := len(l.Strides) == 2 && len(l.Pads) == 4 && len(l.Dilate) == 2 && len(k) == 2
	for i := 0; ok && i < 2; i++ {
		span := l.Dilate[i]*(k[i]-1) + 1 // a window wholly in the padding has no input
		ok = l.Strides[i] > 0 && l.Dilate[i] > 0 && k[i] > 0 && l.Pads[i] >= 0 && l.Pads[i+2] >= 0 &&
			l.Pads[i] < span && l.Pads[i+2] < span
	}
	if !ok {
		return nil, nil, p.unsupported(n, "kernel %v, strides %v, pads %v, dilations %v", k, l.Strides, l.Pads, l.Dilate)
	}
	out := []int64{c, outSize(in[1], k[0], l.Strides[0], l.Pads[0], l.Pads[2], l.Dilate[0]), outSize(in[2], k[1], l.Strides[1], l.Pads[1], l.Pads[3], l.Dilate[1])}
	if out[1] <= 0 || out[2] <= 0 {
		return nil, nil, p.unsupported(n, "output size %v for input %v", out, in)
	}
	return l, out, nil
}

// elementwise turns Add/Sub/Mul/Div into a Sum of two branches or a Scale
// by a constant broadcast to the tensor's shape.
func (p *parser) elementwise(n *onnxpb.NodeProto, op string, data []int, net *Net) (*Layer, []int64, error) {
	in := net.Shapes[data[0]]
	if len(data) == 2 {
		if op != "Add" || !slices.Equal(in, net.Shapes[data[1]]) {
			return nil, nil, p.unsupported(n, "two image-dependent operands are supported only for Add of equal shapes")
		}
		return &Layer{Kind: Sum, In: data}, slices.Clone(in), nil
	}
	ci := 1
	if _, ok := p.consts[n.GetInput()[0]]; ok {
		ci = 0
	}
	c, dims, err := p.floats(n, ci)
	if err != nil {
		return nil, nil, err
	}
	if c == nil || len(n.GetInput()) != 2 {
		return nil, nil, p.unsupported(n, "want two operands")
	}
	full, err := broadcast(c, dims, in)
	if err != nil {
		return nil, nil, p.unsupported(n, "%v", err)
	}
	mul, shift := make([]float64, len(full)), make([]float64, len(full))
	for i, v := range full {
		switch {
		case op == "Add":
			mul[i], shift[i] = 1, v
		case op == "Sub" && ci == 1:
			mul[i], shift[i] = 1, -v
		case op == "Sub":
			mul[i], shift[i] = -1, v
		case op == "Mul":
			mul[i] = v
		case op == "Div" && ci == 1:
			mul[i] = 1 / v
		default:
			return nil, nil, p.unsupported(n, "a constant divided by the image is not affine")
		}
	}
	return &Layer{Kind: Scale, In: data, Mul: mul, Shift: shift}, slices.Clone(in), nil
}

// broadcast expands c of dims to the per-image shape in, ONNX-style (aligned
// from the right; a leading batch dimension of c must be 1).
func broadcast(c []float64, dims, in []int64) ([]float64, error) {
	full := append([]int64{1}, in...)
	if len(dims) > len(full) {
		return nil, fmt.Errorf("constant of dims %v has a higher rank than the tensor [N %v]", dims, in)
	}
	pad := make([]int64, len(full)-len(dims))
	for i := range pad {
		pad[i] = 1
	}
	d := append(pad, dims...)
	if d[0] != 1 {
		return nil, fmt.Errorf("constant of dims %v varies over the batch", dims)
	}
	for i := 1; i < len(full); i++ {
		if d[i] != 1 && d[i] != full[i] {
			return nil, fmt.Errorf("constant of dims %v does not broadcast to [N %v]", dims, in)
		}
	}
	out := make([]float64, size(in))
	idx := make([]int64, len(in))
	for j := range out {
		rem := j
		for a := len(in) - 1; a >= 0; a-- {
			idx[a] = int64(rem) % in[a]
			rem /= int(in[a])
		}
		off, stride := 0, 1
		for a := len(in) - 1; a >= 0; a-- {
			if d[a+1] != 1 {
				off += int(idx[a]) * stride
			}
			stride *= int(d[a+1])
		}
		out[j] = c[off]
	}
	return out, nil
}
