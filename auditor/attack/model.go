package attack

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// prepared is a model made ready for the classifier.
type prepared struct {
	model         *onnxpb.ModelProto
	input, output string
	sample        []int64 // image shape, after the batch dimension
	k             int     // declared class count, 0 if unknown
	normalised    bool
	layout        Layout // NCHW or NHWC
}

// prepare returns a copy of m with one float32 image input [N, sample...]
// (the batch symbolic, the image size fixed), the bound inputs of opt.Bound
// with their shapes fixed, one output (opt.Output), and the normalisation
// (x − mean)/std in front of the original graph.
func prepare(m *onnxpb.ModelProto, name string, opt Options) (*prepared, error) {
	if err := onnxgrad.Validate(m, name); err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	shapeErr := func(format string, args ...any) error {
		return &ShapeError{Model: name, Msg: fmt.Sprintf(format, args...)}
	}

	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	bound := map[string]int{}
	for i, b := range opt.Bound {
		if _, dup := bound[b.Name]; dup {
			return nil, fmt.Errorf("attack: %s: input %q is bound twice", name, b.Name)
		}
		bound[b.Name] = i
	}
	for _, vi := range g.GetInput() {
		i, isBound := bound[vi.GetName()]
		switch {
		case isBound && inits[vi.GetName()]:
			return nil, fmt.Errorf("attack: %s: bound input %q is an initializer of the model", name, vi.GetName())
		case isBound:
			if err := bindShape(vi, opt.Bound[i]); err != nil {
				return nil, shapeErr("bound input %q: %v", vi.GetName(), err)
			}
			delete(bound, vi.GetName())
		}
	}
	for _, b := range opt.Bound {
		if _, missing := bound[b.Name]; missing && inits[b.Name] {
			return nil, fmt.Errorf("attack: %s: bound input %q is an initializer of the model", name, b.Name)
		} else if missing {
			return nil, fmt.Errorf("attack: %s: the model has no input %q to bind", name, b.Name)
		}
	}
	inputs := imageInputs(g, opt.Bound)
	if len(inputs) != 1 {
		if len(opt.Bound) > 0 {
			return nil, shapeErr("the model has %d inputs besides the bound ones; an image classifier has one", len(inputs))
		}
		return nil, shapeErr("the model has %d inputs; an image classifier has one", len(inputs))
	}
	in := inputs[0]
	tt := in.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, shapeErr("input %q is not a float32 tensor", in.GetName())
	}
	layout, err := inputLayout(g, in, opt.InputShape, opt.Layout)
	if err != nil {
		return nil, fmt.Errorf("attack: %s: %w", name, err)
	}
	sample, err := imageShape(name, in, opt.InputShape, layout)
	if err != nil {
		return nil, err
	}
	dims := []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}}
	for _, s := range sample {
		dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: s}})
	}
	tt.Shape = &onnxpb.TensorShapeProto{Dim: dims}

	outName := scoredOutput(g, opt.Output)
	i := slices.IndexFunc(g.GetOutput(), func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == outName })
	if i < 0 {
		var names []string
		for _, o := range g.GetOutput() {
			names = append(names, strconv.Quote(o.GetName()))
		}
		return nil, shapeErr("the model has no output %q; its outputs are %s", outName, strings.Join(names, ", "))
	}
	out := g.GetOutput()[i]
	g.Output = []*onnxpb.ValueInfoProto{out}
	ot := out.GetType().GetTensorType()
	if ot == nil || ot.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, shapeErr("output %q is not a float32 tensor", outName)
	}
	p := &prepared{model: m, input: in.GetName(), output: outName, sample: sample, layout: layout}
	if os := ot.GetShape(); os != nil {
		od := os.GetDim()
		if len(od) != 2 {
			return nil, shapeErr("output %q has rank %d; want class scores [N, K]", outName, len(od))
		}
		od[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}
		if v := od[1].GetDimValue(); v > 0 {
			p.k = int(v)
		}
	}

	if opt.Mean != nil || opt.Std != nil {
		if err := normalise(name, g, p, opt.Mean, opt.Std); err != nil {
			return nil, err
		}
		p.normalised = true
	}
	return p, nil
}

// imageInputs lists the inputs of g that are neither initializers nor
// bound: an image classifier has one, its image.
func imageInputs(g *onnxpb.GraphProto, bound []BoundInput) []*onnxpb.ValueInfoProto {
	skip := map[string]bool{}
	for _, t := range g.GetInitializer() {
		skip[t.GetName()] = true
	}
	for _, b := range bound {
		skip[b.Name] = true
	}
	var out []*onnxpb.ValueInfoProto
	for _, vi := range g.GetInput() {
		if !skip[vi.GetName()] {
			out = append(out, vi)
		}
	}
	return out
}

// scoredOutput names the output of g holding the class scores: output,
// or g's first output when output is "".
func scoredOutput(g *onnxpb.GraphProto, output string) string {
	if output == "" && len(g.GetOutput()) > 0 {
		return g.GetOutput()[0].GetName()
	}
	return output
}

// bindShape checks that the graph input vi can take b (a float32 tensor of
// b.Shape, whose known sizes agree with those vi declares, holding
// len(b.Data) values) and fixes vi's declared shape to b.Shape.
func bindShape(vi *onnxpb.ValueInfoProto, b BoundInput) error {
	tt := vi.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return fmt.Errorf("not a float32 tensor")
	}
	size := 1
	for _, d := range b.Shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative size", b.Shape)
		}
		size *= int(d)
	}
	if size != len(b.Data) {
		return fmt.Errorf("%d values for shape %v", len(b.Data), b.Shape)
	}
	if declared := tt.GetShape(); declared != nil {
		if len(declared.GetDim()) != len(b.Shape) {
			return fmt.Errorf("shape %v, but the model declares rank %d", b.Shape, len(declared.GetDim()))
		}
		for i, d := range declared.GetDim() {
			if v := d.GetDimValue(); v > 0 && v != b.Shape[i] {
				return fmt.Errorf("shape %v, but the model declares size %d in dimension %d", b.Shape, v, i)
			}
		}
	}
	dims := make([]*onnxpb.TensorShapeProto_Dimension, len(b.Shape))
	for i, d := range b.Shape {
		dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
	}
	tt.Shape = &onnxpb.TensorShapeProto{Dim: dims}
	return nil
}

// imageShape returns the dimensions of the input in after the batch
// dimension, from the model or, where given, from fixed (which must agree
// with the model's rank and known sizes). Errors are an *ImageSizeError
// (for the model name, input in layout) or a *ShapeError.
func imageShape(name string, in *onnxpb.ValueInfoProto, fixed []int64, layout Layout) ([]int64, error) {
	var declared []int64
	if shape := in.GetType().GetTensorType().GetShape(); shape != nil {
		dims := shape.GetDim()
		if len(dims) < 2 {
			return nil, &ShapeError{Model: name, Msg: fmt.Sprintf("input %q has rank %d; want a batch of images [N, ...]", in.GetName(), len(dims))}
		}
		declared = make([]int64, len(dims)-1)
		for i, d := range dims[1:] {
			declared[i] = max(d.GetDimValue(), 0)
		}
	}
	sizeErr := &ImageSizeError{Model: name, Input: in.GetName(), Declared: declared, Layout: layout}
	if len(fixed) == 0 {
		if declared == nil || slices.Contains(declared, 0) {
			return nil, sizeErr
		}
		return declared, nil
	}
	for i, v := range fixed {
		if v <= 0 {
			return nil, &ShapeError{Model: name, Msg: fmt.Sprintf("image size %v: dimension %d is not positive", fixed, i+1)}
		}
	}
	sizeErr.Given = slices.Clone(fixed)
	if declared != nil && len(declared) != len(fixed) {
		return nil, sizeErr
	}
	for i, v := range declared {
		if v > 0 && v != fixed[i] {
			return nil, sizeErr
		}
	}
	return slices.Clone(fixed), nil
}

// normalise inserts Sub(x, mean) and Div(·, std) between the graph input and
// its consumers, with constants shaped [1, C, 1, …] (NCHW) or [1, …, 1, C]
// (NHWC), C the channels, so that they broadcast over the batch and the
// spatial axes. name names the model in errors.
func normalise(name string, g *onnxpb.GraphProto, p *prepared, mean, std []float32) error {
	axis := p.layout.ChannelAxis(len(p.sample))
	c := p.sample[axis]
	fail := func(format string, args ...any) error {
		return &NormalisationError{Model: name, Msg: fmt.Sprintf(format, args...), Channels: c, Axis: axis, Layout: p.layout}
	}
	fill := func(what string, v []float32, def float32) ([]float32, error) {
		switch int64(len(v)) {
		case 0:
			v = []float32{def}
			fallthrough
		case 1:
			out := make([]float32, c)
			for i := range out {
				out[i] = v[0]
			}
			return out, nil
		case c:
			return v, nil
		}
		return nil, fail("%d %s values; want 1, or one per channel: %d on axis %d of the input %s", len(v), what, c, axis+1, describeInput(p.sample, p.layout))
	}
	mean, err := fill("mean", mean, 0)
	if err != nil {
		return err
	}
	std, err = fill("std", std, 1)
	if err != nil {
		return err
	}
	for i := range c {
		if isNonFinite32(mean[i]) || isNonFinite32(std[i]) || std[i] == 0 {
			return fail("channel %d: mean %v, std %v; want finite values and a non-zero std", i, mean[i], std[i])
		}
	}

	fresh := namer(g)
	mName, sName := fresh("attack/mean"), fresh("attack/std")
	centred, normed := fresh("attack/centred"), fresh("attack/normalised")

	cshape := make([]int64, len(p.sample)+1)
	for i := range cshape {
		cshape[i] = 1
	}
	cshape[1+axis] = c
	g.Initializer = append(g.Initializer,
		onnxgrad.NewTensorFloat32(mName, cshape, mean),
		onnxgrad.NewTensorFloat32(sName, cshape, std))
	for _, n := range g.GetNode() {
		for i, in := range n.GetInput() {
			if in == p.input {
				n.Input[i] = normed
			}
		}
	}
	for _, o := range g.GetOutput() {
		if o.GetName() == p.input {
			return &ShapeError{Model: name, Msg: fmt.Sprintf("the input %q is also an output", p.input)}
		}
	}
	nodes := []*onnxpb.NodeProto{
		{Name: proto.String("attack/Sub"), OpType: proto.String("Sub"), Input: []string{p.input, mName}, Output: []string{centred}},
		{Name: proto.String("attack/Div"), OpType: proto.String("Div"), Input: []string{centred, sName}, Output: []string{normed}},
	}
	g.Node = append(nodes, g.GetNode()...)
	return nil
}

// namer returns a function that gives names no tensor of g has yet: base,
// or base_1, base_2, … when taken.
func namer(g *onnxpb.GraphProto) func(base string) string {
	used := map[string]bool{}
	for _, t := range g.GetInitializer() {
		used[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			used[o] = true
		}
	}
	for _, vi := range g.GetInput() {
		used[vi.GetName()] = true
	}
	return func(base string) string {
		s := base
		for i := 1; used[s]; i++ {
			s = fmt.Sprintf("%s_%d", base, i)
		}
		used[s] = true
		return s
	}
}

// lossModel returns a copy of the classifier's model m (image input, scores
// output [N, k], N named "N" by prepare) with a one-hot label input [N, k]
// and a second output holding the cross-entropy terms
// loss[i, c] = −onehot[i, c]·log p[i, c] (float32 [N, k]; a row sums to
// image i's cross-entropy), where log p is LogSoftmax(scores): the scores
// are logits or log-probabilities (see ScoreSource), whose LogSoftmax is
// log p either way. The loss is computed in float64 so
// that its gradient keeps the label's term p_y − 1 when p_y rounds to 1 in
// float32 (a confidently classified image): in float32 that term vanishes
// and the input gradient would point along the other classes' scores alone.
func lossModel(m *onnxpb.ModelProto, output string, k int) (lm *onnxpb.ModelProto, onehot, loss string) {
	lm = proto.Clone(m).(*onnxpb.ModelProto)
	g := lm.GetGraph()
	fresh := namer(g)
	onehot, loss = fresh("attack/onehot"), fresh("attack/loss")
	labels := &onnxpb.ValueInfoProto{Name: proto.String(onehot), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(k)}},
		}},
	}}}}
	g.Input = append(g.Input, labels)

	node := func(op string, in []string, attrs ...*onnxpb.AttributeProto) string {
		out := fresh("attack/" + op)
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs})
		return out
	}
	toDouble := &onnxpb.AttributeProto{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnxpb.TensorProto_DOUBLE))}
	z := node("Cast", []string{output}, toDouble)
	logp := node("LogSoftmax", []string{z}, &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)})
	terms := node("Neg", []string{node("Mul", []string{logp, node("Cast", []string{onehot}, toDouble)})})
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(loss), OpType: proto.String("Cast"), Input: []string{terms}, Output: []string{loss},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnxpb.TensorProto_FLOAT))}}})
	g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(loss), Type: proto.Clone(labels.GetType()).(*onnxpb.TypeProto)})
	return lm, onehot, loss
}
