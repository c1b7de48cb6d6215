package onnxgrad

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Mode selects what gradient graph Build produces.
type Mode int

const (
	// VJP adds a cotangent input shaped like the output and returns the
	// vector-Jacobian product with respect to each WRT tensor.
	VJP Mode = iota
	// Jacobian returns, for an output of shape [N, K], the per-sample
	// Jacobian [N, L, ...] of L class scores (all K, or the top Classes by
	// score) with respect to each WRT input of shape [N, ...].
	Jacobian
	// Params is VJP with respect to initializers, for training: by default
	// every floating-point initializer the output depends on.
	Params
)

func (m Mode) String() string {
	switch m {
	case VJP:
		return "vjp"
	case Jacobian:
		return "jacobian"
	case Params:
		return "params"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configure Build.
type Options struct {
	Mode Mode
	// Output is the graph output to differentiate; "" means the first.
	Output string
	// WRT names the tensors to differentiate with respect to. Empty means
	// the first graph input (VJP, Jacobian) or all floating-point
	// initializers on the path to Output (Params).
	WRT []string
	// Classes, in Jacobian mode, restricts the Jacobian to the Classes
	// highest-scoring classes of each sample (0 means all K). Their indices
	// are returned in the output named Result.Classes, shape [N, Classes].
	Classes int
	// SeedInput, in Jacobian mode, replaces the built-in one-hot seeds by a
	// graph input of shape [N, L, K]: the result is then
	// J[n, l, ...] = Σ_k seed[n, l, k] · ∂output[n, k]/∂x[n, ...].
	SeedInput bool
	// InputShape, if set, fixes the shape of the first graph input except
	// its first (batch) dimension, which stays symbolic. Use it for models
	// whose spatial sizes are symbolic.
	InputShape []int64
	// File names the model in error messages.
	File string
}

// Result describes a gradient model made by Build.
type Result struct {
	// Model computes the original outputs plus the gradients.
	Model *onnxpb.ModelProto
	// Output is the differentiated output.
	Output string
	// Seed is the extra input: the cotangent (VJP, Params, shaped like
	// Output) or the Jacobian seed (Jacobian with SeedInput); "" otherwise.
	Seed string
	// WRT lists the tensors differentiated with respect to, and Grads the
	// names of the matching gradient outputs.
	WRT   []string
	Grads []string
	// Classes is the [N, Classes] int64 output of candidate class indices in
	// Jacobian mode with Classes > 0.
	Classes string
}

// ClassesError reports a Jacobian whose class rows cannot be built as
// asked: a number of top classes (Options.Classes) outside 0 to K, or a
// full Jacobian (Requested 0) over too many classes.
type ClassesError struct {
	File      string
	Output    string // the differentiated output
	Requested int    // the top classes asked for; 0 for all
	K         int64  // the output's classes
}

func (e *ClassesError) Error() string {
	s := "onnxgrad: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Requested == 0 {
		return s + fmt.Sprintf("output %q has %d classes, too many for a full Jacobian; restrict it to the top classes", e.Output, e.K)
	}
	return s + fmt.Sprintf("the Jacobian of the top %d classes asked for, but output %q has %d", e.Requested, e.Output, e.K)
}

// ErrNotDifferentiable reports a WRT tensor the output does not depend on.
var ErrNotDifferentiable = errors.New("onnxgrad: output does not depend on the tensor")

// Build returns a copy of m that also computes gradients as opt describes.
// Only standard ONNX operators are added; the model's default opset is raised
// where a backward rule needs a newer operator (13 at least).
func Build(m *onnxpb.ModelProto, opt Options) (*Result, error) {
	if err := Validate(m, opt.File); err != nil {
		return nil, err
	}
	m = proto.Clone(m).(*onnxpb.ModelProto)
	gr := newGraph(m, opt.File)
	if gr.opset < minUpgradableOpset {
		return nil, &FormatError{File: opt.File, Field: "opset_import", Msg: fmt.Sprintf("default-domain opset %d is older than %d, the oldest onnxgrad differentiates; re-export the model with opset_version=13 or newer", gr.opset, minUpgradableOpset)}
	}
	inputs := graphInputs(m)
	if len(inputs) == 0 {
		return nil, &FormatError{File: opt.File, Field: "graph.input", Msg: "the model has no inputs"}
	}
	if opt.InputShape != nil {
		if err := fixInputShape(inputs[0], opt.InputShape); err != nil {
			return nil, &FormatError{File: opt.File, Field: fmt.Sprintf("graph.input %q", inputs[0].GetName()), Msg: err.Error()}
		}
	}
	gr.commuteReluMaxPool()
	gr.infer()
	if gr.opset < 13 {
		if err := gr.upgradeTo13(); err != nil {
			return nil, err
		}
	}
	output := opt.Output
	if output == "" {
		output = m.GetGraph().GetOutput()[0].GetName()
	}
	outInfo := gr.info[output]
	i := slices.IndexFunc(m.GetGraph().GetOutput(), func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == output })
	if i < 0 {
		return nil, &FormatError{File: opt.File, Field: "graph.output", Msg: fmt.Sprintf("no output %q", output)}
	}
	declareKnownSizes(m.GetGraph().GetOutput()[i], outInfo)

	wrt := slices.Clone(opt.WRT)
	if len(wrt) == 0 && opt.Mode != Params {
		wrt = []string{inputs[0].GetName()}
	}
	if len(wrt) == 0 {
		for _, t := range m.GetGraph().GetInitializer() {
			if isFloatType(t.GetDataType()) {
				wrt = append(wrt, t.GetName())
			}
		}
	}
	for _, w := range wrt {
		if info := gr.info[w]; info == nil || !isFloatType(int32(info.elem)) {
			return nil, &FormatError{File: opt.File, Field: "wrt", Msg: fmt.Sprintf("%q is not a floating-point input or initializer of the graph", w)}
		}
	}

	// An op without a rule anywhere on the path is the first thing to
	// report: it is the cause of whatever else inference could not find
	// out downstream of it.
	onPath, diff := differentiablePath(m.GetGraph(), gr, wrt, output)
	if u := unsupportedOps(onPath, opt.File); len(u) > 0 {
		return nil, u[0]
	}
	switch {
	case outInfo == nil || outInfo.elem == onnxpb.TensorProto_UNDEFINED:
		return nil, &FormatError{File: opt.File, Field: fmt.Sprintf("graph.output %q", output), Msg: "element type unknown: the model does not declare it and shape inference could not follow the graph to it"}
	case !isFloatType(int32(outInfo.elem)):
		return nil, &FormatError{File: opt.File, Field: fmt.Sprintf("graph.output %q", output), Msg: fmt.Sprintf("element type %s is not floating point", outInfo.elem)}
	}
	if !diff[output] {
		return nil, fmt.Errorf("%w: %q does not depend on %v", ErrNotDifferentiable, output, wrt)
	}
	if opt.WRT == nil && opt.Mode == Params {
		wrt = slices.DeleteFunc(wrt, func(w string) bool { return !diff[w] })
	}
	for _, w := range wrt {
		if !diff[w] {
			return nil, fmt.Errorf("%w: %q does not depend on %q", ErrNotDifferentiable, output, w)
		}
	}
	for _, n := range onPath {
		if err := gr.inferErr[n]; err != nil {
			return nil, gr.explain(err, n, opt.File)
		}
	}

	res := &Result{Model: m, Output: output, WRT: wrt}
	lead := opt.Mode == Jacobian
	seed, err := makeSeed(gr, opt, outInfo, res)
	if err != nil {
		return nil, err
	}
	for _, n := range gr.newNodes {
		if err := gr.inferNode(n); err != nil && !errors.Is(err, ErrUnknownShape) {
			return nil, fmt.Errorf("onnxgrad: the seed of the backward pass: %w", err)
		}
	}

	acc := map[string][]string{output: {seed}}
	for i := len(onPath) - 1; i >= 0; i-- {
		n := onPath[i]
		c := &gradCtx{nodeCtx: nodeCtx{gr: gr, n: n}, lead: lead}
		for _, o := range n.GetOutput() {
			c.gy = append(c.gy, gr.sum(acc[o]))
		}
		if !slices.ContainsFunc(c.gy, func(s string) bool { return s != "" }) {
			continue
		}
		for _, in := range n.GetInput() {
			c.need = append(c.need, in != "" && diff[in])
		}
		c.gx = make([]string, len(n.GetInput()))
		emitted := len(gr.newNodes)
		err := rules[n.GetOpType()].grad(c)
		if err == nil {
			err = c.err
		}
		if err == nil {
			err = c.checkGrads(emitted)
		}
		if err != nil {
			return nil, gr.explain(err, n, opt.File)
		}
		for j, g := range c.gx {
			if g != "" && c.need[j] {
				acc[n.GetInput()[j]] = append(acc[n.GetInput()[j]], g)
			}
		}
	}

	// A tensor read only as a parameter the rules do not differentiate
	// (Clip's bounds, Pad's value, Resize's scales) gets no gradient: an
	// error when asked for by name, dropped from the default weights.
	kept := wrt[:0]
	for _, w := range wrt {
		switch {
		case len(acc[w]) > 0:
			kept = append(kept, w)
		case opt.WRT != nil || opt.Mode != Params:
			return nil, fmt.Errorf("%w: %q is read only as a parameter that onnxgrad does not differentiate (such as Clip's bounds or Resize's scales)", ErrNotDifferentiable, w)
		}
	}
	wrt, res.WRT = kept, kept
	for _, w := range wrt {
		g := gr.sum(acc[w])
		suffix, shape := "_grad", gr.info[w].shape
		if lead {
			suffix, shape = "_jacobian", append(Shape{shape[0], jacobianRows(opt, outInfo)}, shape[1:]...)
			// [L, N, ...] → [N, L, ...], the layout of torch's per-sample Jacobian.
			r := gr.info[w].rank()
			perm := []int64{1, 0}
			for a := 2; a <= r; a++ {
				perm = append(perm, int64(a))
			}
			g = gr.op("Transpose", []string{g}, attrInts("perm", perm))
		}
		name := gr.fresh(w + suffix)
		gr.newNodes = append(gr.newNodes, &onnxpb.NodeProto{Name: proto.String(gr.fresh("grad/output")), OpType: proto.String("Identity"), Input: []string{g}, Output: []string{name}})
		res.Grads = append(res.Grads, name)
		m.GetGraph().Output = append(m.GetGraph().Output, tensorValueInfo(name, gr.info[w].elem, shape))
	}
	m.GetGraph().Node = append(m.GetGraph().Node, gr.newNodes...)
	if gr.minOpset > gr.opset {
		setOpset(m, gr.minOpset)
	}
	// The IR version that introduced the model's opset: 7 for opset 13, 8
	// for opsets 14–18 (ONNX 1.9–1.13).
	ir := int64(7)
	if Opset(m) >= 14 {
		ir = 8
	}
	if m.GetIrVersion() < ir {
		m.IrVersion = proto.Int64(ir)
	}
	return res, nil
}

// declareKnownSizes writes into an output's declaration the sizes that
// inference knows and the declaration leaves symbolic: static exports
// declare outputs as [Add91_dim_0, Add91_dim_1] although the class count is
// fixed, and callers read K from the gradient model's declarations.
func declareKnownSizes(vi *onnxpb.ValueInfoProto, info *tensorInfo) {
	dims := vi.GetType().GetTensorType().GetShape().GetDim()
	if info == nil || !info.hasShape || len(dims) != len(info.shape) {
		return
	}
	for i, d := range dims {
		if e := info.shape[i]; d.GetDimValue() <= 0 && e.Known() {
			dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: e.Value}}
		}
	}
}

// checkGrads is the check every gradient rule passes through: it runs shape
// inference over the nodes the rule appended (gr.newNodes[from:]), each of
// an op with a shape rule, and
// compares each gradient the rule returned with its forward input — the
// same element type, the same rank plus the class axis in Jacobian mode, and
// the same size wherever both are known. A rule that emits an op inference
// rejects, or a gradient of the wrong shape, fails here with the node
// named, instead of as an onnxruntime error far from its cause or as a
// silently broadcast wrong gradient.
func (c *gradCtx) checkGrads(from int) error {
	for _, n := range c.gr.newNodes[from:] {
		if shapeRule(n) == nil {
			return c.errorf("the gradient rule emitted a %s node, which has no shape rule to check it with (register one)", n.GetOpType())
		}
		// A node whose inputs inference could not follow stays unknown and
		// goes unchecked; anything else it rejects is the rule's mistake.
		if err := c.gr.inferNode(n); err != nil && !errors.Is(err, ErrUnknownShape) {
			msg := err.Error()
			if ne, ok := err.(*NodeError); ok {
				msg = ne.Msg
			}
			return c.errorf("the gradient rule emitted a %s node that fails shape inference: %s", n.GetOpType(), msg)
		}
	}
	for i, g := range c.gx {
		if g == "" || !c.need[i] {
			continue
		}
		got, want := c.gr.info[g], c.in(i)
		if got == nil || want == nil {
			continue
		}
		if got.elem != onnxpb.TensorProto_UNDEFINED && want.elem != onnxpb.TensorProto_UNDEFINED && got.elem != want.elem {
			return c.errorf("the gradient of input %d (%q) is %s, the input %s", i, c.input(i), got.elem, want.elem)
		}
		if got.hasShape && want.hasShape && !fitsGradient(got.shape, want.shape, c.off()) {
			return c.errorf("the gradient of input %d (%q) has shape %v, the input %v%s", i, c.input(i), got.shape, want.shape, c.leadNote())
		}
	}
	return nil
}

// fitsGradient reports whether a gradient of shape g may belong to a tensor
// of shape x: off more leading axes, and the same size wherever both know
// it.
func fitsGradient(g, x Shape, off int) bool {
	if len(g) != len(x)+off {
		return false
	}
	for a, d := range x {
		if e := g[a+off]; d.Known() && e.Known() && d.Value != e.Value {
			return false
		}
	}
	return true
}

// leadNote explains the extra axis of gradients in Jacobian mode.
func (c *gradCtx) leadNote() string {
	if c.lead {
		return " (gradients carry a leading class axis in Jacobian mode)"
	}
	return ""
}

// jacobianRows is the size of the Jacobian's class axis L.
func jacobianRows(opt Options, outInfo *tensorInfo) Dim {
	switch {
	case opt.SeedInput:
		return Dim{Param: "L"}
	case opt.Classes > 0:
		return known(int64(opt.Classes))
	}
	return outInfo.shape[1]
}

// makeSeed adds the backward pass's starting cotangent to the graph.
func makeSeed(gr *graph, opt Options, outInfo *tensorInfo, res *Result) (string, error) {
	g := gr.g
	elem := outInfo.elem
	if opt.Mode != Jacobian {
		if opt.Classes != 0 || opt.SeedInput {
			return "", errors.New("onnxgrad: Classes and SeedInput apply to Jacobian mode only")
		}
		res.Seed = gr.fresh(res.Output + "_grad")
		gr.addInput(res.Seed, elem, outInfo.shape)
		return res.Seed, nil
	}
	if !outInfo.hasShape || outInfo.rank() != 2 {
		return "", &FormatError{File: opt.File, Field: fmt.Sprintf("graph.output %q", res.Output), Msg: fmt.Sprintf("Jacobian mode needs class scores of shape [N, K], got %v", outInfo)}
	}
	k := outInfo.shape[1]
	switch {
	case opt.SeedInput:
		if opt.Classes != 0 {
			return "", errors.New("onnxgrad: Classes and SeedInput cannot be combined")
		}
		res.Seed = gr.fresh(res.Output + "_seed")
		gr.addInput(res.Seed, elem, Shape{outInfo.shape[0], Dim{Param: "L"}, k})
		return gr.op("Transpose", []string{res.Seed}, attrInts("perm", []int64{1, 0, 2})), nil
	case !k.Known():
		return "", &FormatError{File: opt.File, Field: fmt.Sprintf("graph.output %q", res.Output), Msg: "Jacobian mode needs a static class count K"}
	case opt.Classes < 0 || int64(opt.Classes) > k.Value:
		return "", &ClassesError{File: opt.File, Output: res.Output, Requested: opt.Classes, K: k.Value}
	case opt.Classes == 0:
		if tooLarge(k.Value, k.Value) {
			return "", &ClassesError{File: opt.File, Output: res.Output, K: k.Value}
		}
		eye := make([]float64, k.Value*k.Value)
		for i := int64(0); i < k.Value; i++ {
			eye[i*k.Value+i] = 1
		}
		e := gr.constFloat(elem, []int64{k.Value, 1, k.Value}, eye)
		target := gr.op("Concat", []string{gr.ints(k.Value), gr.op("Shape", []string{res.Output})}, attrInt("axis", 0))
		return gr.op("Expand", []string{e, target}), nil
	default:
		outs := gr.opN("TopK", 2, []string{res.Output, gr.ints(int64(opt.Classes))}, attrInt("axis", 1))
		res.Classes = gr.fresh(res.Output + "_classes")
		gr.newNodes = append(gr.newNodes, &onnxpb.NodeProto{Name: proto.String(gr.fresh("grad/classes")), OpType: proto.String("Identity"), Input: []string{outs[1]}, Output: []string{res.Classes}})
		g.Output = append(g.Output, tensorValueInfo(res.Classes, onnxpb.TensorProto_INT64, Shape{outInfo.shape[0], known(int64(opt.Classes))}))
		idx := gr.op("Transpose", []string{outs[1]}, attrInts("perm", []int64{1, 0}))
		onOff := gr.constFloat(elem, []int64{2}, []float64{0, 1})
		return gr.op("OneHot", []string{idx, gr.constInts([]int64{k.Value}, true), onOff}, attrInt("axis", -1)), nil
	}
}

// explain returns err, raised at node n, or — when err is a shape or value
// that inference did not know and an op without a shape rule upstream of n
// is why — an UnsupportedOpError for that op: the cause, not its echo.
func (gr *graph) explain(err error, n *onnxpb.NodeProto, file string) error {
	if !errors.Is(err, ErrUnknownShape) {
		return err
	}
	producer := map[string]*onnxpb.NodeProto{}
	for _, p := range gr.g.GetNode() {
		for _, o := range p.GetOutput() {
			producer[o] = p
		}
	}
	seen := map[*onnxpb.NodeProto]bool{}
	queue := []*onnxpb.NodeProto{n}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, in := range cur.GetInput() {
			p := producer[in]
			if p == nil || seen[p] {
				continue
			}
			seen[p] = true
			if shapeRule(p) == nil {
				return &UnsupportedOpError{File: file, Node: p.GetName(), OpType: qualifiedOp(p), ShapeOnly: true}
			}
			queue = append(queue, p)
		}
	}
	return err
}

// unsupportedOps lists the nodes of path that have no gradient rule.
func unsupportedOps(path []*onnxpb.NodeProto, file string) []*UnsupportedOpError {
	var out []*UnsupportedOpError
	for _, n := range path {
		if r, ok := rules[n.GetOpType()]; !ok || r.grad == nil || canonicalDomain(n.GetDomain()) != "" {
			out = append(out, &UnsupportedOpError{File: file, Node: n.GetName(), OpType: qualifiedOp(n)})
		}
	}
	return out
}

// differentiablePath returns the nodes (in graph order) that lie on a path
// from a wrt tensor to output through floating-point tensors, and the set of
// tensors on such paths.
func differentiablePath(g *onnxpb.GraphProto, gr *graph, wrt []string, output string) ([]*onnxpb.NodeProto, map[string]bool) {
	isFloat := func(name string) bool {
		info := gr.info[name]
		// unknown types (after ops without rules) may carry gradient
		return info == nil || info.elem == onnxpb.TensorProto_UNDEFINED || isFloatType(int32(info.elem))
	}
	fwd := map[string]bool{}
	for _, w := range wrt {
		fwd[w] = true
	}
	for _, n := range g.GetNode() {
		if slices.ContainsFunc(n.GetInput(), func(s string) bool { return fwd[s] }) {
			for _, o := range n.GetOutput() {
				if o != "" && isFloat(o) {
					fwd[o] = true
				}
			}
		}
	}
	bwd := map[string]bool{output: fwd[output]}
	var path []*onnxpb.NodeProto
	nodes := g.GetNode()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !slices.ContainsFunc(n.GetOutput(), func(s string) bool { return bwd[s] }) {
			continue
		}
		used := false
		for _, in := range n.GetInput() {
			if fwd[in] {
				bwd[in] = true
				used = true
			}
		}
		if used {
			path = append(path, n)
		}
	}
	slices.Reverse(path)
	return path, bwd
}

// sum adds up gradient contributions ("" when there are none).
func (gr *graph) sum(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return gr.op("Sum", parts)
}

// graphInputs returns the graph inputs that are not initializers.
func graphInputs(m *onnxpb.ModelProto) []*onnxpb.ValueInfoProto {
	init := map[string]bool{}
	for _, t := range m.GetGraph().GetInitializer() {
		init[t.GetName()] = true
	}
	var out []*onnxpb.ValueInfoProto
	for _, vi := range m.GetGraph().GetInput() {
		if !init[vi.GetName()] {
			out = append(out, vi)
		}
	}
	return out
}

func fixInputShape(vi *onnxpb.ValueInfoProto, dims []int64) error {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return errors.New("not a tensor")
	}
	shape := Shape{{Param: "N"}}
	if old := tt.GetShape(); old != nil && len(old.GetDim()) > 0 {
		if p := old.GetDim()[0].GetDimParam(); p != "" {
			shape[0] = Dim{Param: p}
		}
		if len(old.GetDim()) != len(dims)+1 {
			return fmt.Errorf("input shape %v (without the batch dimension) does not match the model's rank %d", dims, len(old.GetDim()))
		}
	}
	for _, d := range dims {
		if d <= 0 {
			return fmt.Errorf("input shape %v has a non-positive dimension", dims)
		}
		shape = append(shape, known(d))
	}
	tt.Shape = shapeProto(shape)
	return nil
}

func shapeProto(s Shape) *onnxpb.TensorShapeProto {
	sp := &onnxpb.TensorShapeProto{}
	for _, d := range s {
		if d.Known() {
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}})
		} else if !isAnonymous(d) {
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}})
		} else {
			sp.Dim = append(sp.Dim, &onnxpb.TensorShapeProto_Dimension{})
		}
	}
	return sp
}

// tensorValueInfo declares a tensor; a nil shape leaves the rank unknown.
func tensorValueInfo(name string, elem onnxpb.TensorProto_DataType, shape Shape) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem))}
	if shape != nil {
		tt.Shape = shapeProto(shape)
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// gradCtx is a rule's view of one node during the backward pass.
type gradCtx struct {
	nodeCtx
	// lead is true when gradients carry a leading class axis L in front of
	// the forward tensor's own axes (Jacobian mode).
	lead bool
	gy   []string // incoming gradient per output ("" when none)
	need []bool   // which inputs need a gradient
	gx   []string // the rule's results, per input
}

// off is the number of leading axes gradients have beyond the forward shape.
func (c *gradCtx) off() int {
	if c.lead {
		return 1
	}
	return 0
}

// op and friends forward to the graph builder.
func (c *gradCtx) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	return c.gr.op(opType, inputs, attrs...)
}

// scalar is a constant of the node's floating-point type.
func (c *gradCtx) scalar(v float64) string { return c.gr.scalar(c.gradElem(), v) }

// gradElem is the element type of the gradients flowing through the node.
func (c *gradCtx) gradElem() onnxpb.TensorProto_DataType {
	for i := range c.n.GetOutput() {
		if t := c.out(i); t != nil && isFloatType(int32(t.elem)) {
			return t.elem
		}
	}
	return onnxpb.TensorProto_FLOAT
}

// toGradElem casts tensor t to the gradients' element type: a BOOL mask
// becomes 0/1, an integer tensor its values.
func (c *gradCtx) toGradElem(t string) string {
	return c.op("Cast", []string{t}, attrInt("to", int64(c.gradElem())))
}

// contractAxis multiplies axis ax of g (of rank r) by the constant [rows,
// cols] matrix m: out[..., j, ...] = Σᵢ g[..., i, ...]·m[i, j]. The last
// axis is one MatMul, the one before it a MatMul by mᵀ from the left; other
// axes are swapped to the end and back.
func (c *gradCtx) contractAxis(g string, ax, r int, m []float64, rows, cols int64) string {
	if ax == r-2 {
		mt := make([]float64, len(m))
		for i := range rows {
			for j := range cols {
				mt[j*rows+i] = m[i*cols+j]
			}
		}
		return c.op("MatMul", []string{c.gr.constFloat(c.gradElem(), []int64{cols, rows}, mt), g})
	}
	k := c.gr.constFloat(c.gradElem(), []int64{rows, cols}, m)
	if ax == r-1 {
		return c.op("MatMul", []string{g, k})
	}
	perm := swapPerm(r, ax, r-1)
	g = c.op("Transpose", []string{g}, attrInts("perm", perm))
	g = c.op("MatMul", []string{g, k})
	return c.op("Transpose", []string{g}, attrInts("perm", perm))
}

// shapeTensor returns a tensor holding the runtime shape of the forward
// tensor x, with a leading -1 for the class axis in Jacobian mode, so that a
// Reshape to it restores x's layout in either mode.
func (c *gradCtx) shapeTensor(x string) string {
	s := c.op("Shape", []string{x})
	if c.lead {
		s = c.op("Concat", []string{c.gr.ints(-1), s}, attrInt("axis", 0))
	}
	return s
}

// reshapeLike reshapes gradient g to the layout of forward tensor x.
func (c *gradCtx) reshapeLike(g, x string) string {
	return c.op("Reshape", []string{g, c.shapeTensor(x)})
}

// setGrad records the gradient of input i if it is needed.
func (c *gradCtx) setGrad(i int, g string) {
	if i < len(c.need) && c.need[i] {
		c.gx[i] = g
	}
}

// unbroadcast sums gradient g, computed for a forward tensor of shape
// from, down to the shape of forward input i (ONNX multidirectional
// broadcasting undone), and reshapes it to that input's layout.
func (c *gradCtx) unbroadcast(g string, from Shape, i int) string {
	to := c.shapeIn(i)
	if c.err != nil {
		return ""
	}
	var axes []int64
	off := len(from) - len(to)
	for a := range from {
		j := a - off
		if j < 0 || (to[j].Known() && to[j].Value == 1 && !(from[a].Known() && from[a].Value == 1)) {
			axes = append(axes, int64(a+c.off()))
		}
	}
	if len(axes) > 0 {
		g = c.op("ReduceSum", []string{g, c.gr.ints(axes...)}, attrInt("keepdims", 1))
	}
	if len(axes) > 0 || len(from) != len(to) {
		g = c.reshapeLike(g, c.input(i))
	}
	return g
}
