package onnxgrad

// Making a fixed batch dimension symbolic. An exporter that traces a model
// on one example batch of B images, without declaring the batch dynamic
// (torch.onnx.export without dynamic_axes, CNTK), writes B into the input's
// shape and into constants: Reshape targets [B, -1], Expand and
// ConstantOfShape shapes, Tile repeats, tensors with a leading B that are
// concatenated with per-image tensors. Such a model runs on exactly B images
// at a time. SymbolicBatch rewrites what it can recognise so that the model
// runs on any number of images.

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// BatchOptions configure [SymbolicBatch].
type BatchOptions struct {
	// Input is the graph input whose dimension 0 is the batch; "" means the
	// first graph input that is not an initializer.
	Input string
	// Size is the batch size B the model was exported with. 0 means the
	// size the input declares, which must then be fixed; a caller that has
	// already made the input's dimension symbolic gives it here.
	Size int64
	// Symbol names the symbolic batch dimension; "" means "N".
	Symbol string
	// File names the model in errors.
	File string
}

// BatchRewrite is a model made by [SymbolicBatch].
type BatchRewrite struct {
	// Model is the rewritten copy of the model.
	Model *onnxpb.ModelProto
	// Input is the graph input whose batch dimension was made symbolic,
	// and Size the fixed batch size it had.
	Input string
	Size  int64
	// Changes describes each change, one line each, the input first.
	Changes []string
}

// maxBatchPasses bounds the rewrite passes. A pass fixes what shape
// inference shows; its fixes make more tensors batch-sized, which can
// reveal the next conflict downstream (a fixed constant concatenated with
// the output of a rewritten Reshape).
const maxBatchPasses = 16

// SymbolicBatch returns a copy of m whose image input has a symbolic batch
// dimension (dimension 0) instead of the fixed size B the model was
// exported with, and whose constants that carry B are rewritten so that the
// graph computes the same per-image results for any number of images:
//
//   - a Reshape whose data has the batch as dimension 0 and whose constant
//     target starts with B: B becomes 0, which copies the data's dimension 0
//     (allowzero = 0), or the runtime batch size (allowzero = 1);
//   - a tensor whose dimension 0 is B, concatenated along another axis with
//     a tensor that has the batch as dimension 0, or (B > 1) broadcast
//     against one by an elementwise operator: when it comes from an Expand
//     or ConstantOfShape whose constant shape starts with B, or from a Tile
//     of a [1, …] tensor whose constant repeats start with B, that B becomes
//     the runtime batch size, Gather(Shape(input), [0]); for B = 1 any other
//     such tensor, and any concatenated tensor whose shape inference cannot
//     tell (expanding a tensor whose dimension 0 is the batch already
//     changes nothing), is expanded along dimension 0 to the batch size.
//
// Shape inference (with the batch as a symbol) tells which tensors carry
// the batch, and the passes repeat until nothing changes. Declared shapes of
// outputs and value_info whose dimension 0 was B follow. Other constants that
// encode B (a Reshape that merges the batch with another axis, a loop
// count) are left as they are: the rewrite is a best effort, so callers
// check the result, for instance by comparing outputs with the original on
// the same images, before relying on it.
//
// It returns an error when the model is invalid or its input does not fix
// the batch (or fixes another size than opt.Size).
func SymbolicBatch(m *onnxpb.ModelProto, opt BatchOptions) (*BatchRewrite, error) {
	if err := Validate(m, opt.File); err != nil {
		return nil, err
	}
	m = proto.Clone(m).(*onnxpb.ModelProto)
	inputs := graphInputs(m)
	i := 0
	if opt.Input != "" {
		i = slices.IndexFunc(inputs, func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == opt.Input })
	}
	if i < 0 || i >= len(inputs) {
		return nil, &FormatError{File: opt.File, Field: "graph.input", Msg: fmt.Sprintf("no input %q", opt.Input)}
	}
	in := inputs[i]
	field := fmt.Sprintf("graph.input %q", in.GetName())
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) == 0 {
		return nil, &FormatError{File: opt.File, Field: field, Msg: "no batch dimension: the shape is unknown or 0-d"}
	}
	b, declared := opt.Size, dims[0].GetDimValue()
	switch {
	case b == 0 && declared <= 0:
		return nil, &FormatError{File: opt.File, Field: field, Msg: fmt.Sprintf("the batch size is not fixed (dimension 0 is %q)", dims[0].GetDimParam())}
	case b == 0:
		b = declared
	case b < 0 || (declared > 0 && declared != b):
		return nil, &FormatError{File: opt.File, Field: field, Msg: fmt.Sprintf("batch size %d, but the input declares %d", b, declared)}
	}
	sym := opt.Symbol
	if sym == "" {
		sym = "N"
	}
	dims[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: sym}}

	br := &batchRewriter{gr: newGraph(m, opt.File), b: b, sym: Dim{Param: sym}, image: in.GetName(), fixed: map[string]string{}, expanded: map[string]bool{}}
	for range maxBatchPasses {
		br.infer()
		if !br.pass() {
			break
		}
	}
	br.infer()
	br.redeclare()
	changes := append([]string{fmt.Sprintf("input %q: batch dimension %d → %s", in.GetName(), b, sym)}, br.changes...)
	return &BatchRewrite{Model: m, Input: in.GetName(), Size: b, Changes: changes}, nil
}

// batchRewriter is the state of one SymbolicBatch.
type batchRewriter struct {
	gr    *graph
	b     int64  // the fixed batch size
	sym   Dim    // the symbolic batch dimension
	image string // the input whose batch was made symbolic
	// producer maps each tensor to the node that computes it.
	producer map[string]*onnxpb.NodeProto
	// batch is the int64 tensor [N] computed from the image's shape, ""
	// until needed.
	batch string
	// fixed maps a tensor fixed in this pass to the name its consumers
	// read instead (itself when its producer was rewritten); expanded
	// holds the outputs of the Expand nodes made to fix tensors.
	fixed    map[string]string
	expanded map[string]bool
	changes  []string
	// front are the new nodes that read only the image and constants, in
	// the order made; before the new nodes to insert before a node.
	front  []*onnxpb.NodeProto
	before map[*onnxpb.NodeProto][]*onnxpb.NodeProto
}

// broadcastOps are the elementwise operators whose operands are broadcast
// against each other (multidirectional broadcasting).
var broadcastOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Sum": true, "Mean": true, "Max": true, "Min": true,
	"Where": true, "PRelu": true, "Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Xor": true, "BitShift": true, "Mod": true,
}

// infer redoes shape inference from scratch over the graph as it is now.
func (br *batchRewriter) infer() {
	br.gr.info = map[string]*tensorInfo{}
	br.gr.inferErr = map[*onnxpb.NodeProto]error{}
	br.gr.infer()
}

// lead returns dimension 0 and the rank of tensor name, ok false when its
// shape is unknown or 0-d.
func (br *batchRewriter) lead(name string) (d Dim, rank int, ok bool) {
	t := br.gr.info[name]
	if t != nil && t.hasShape && len(t.shape) > 0 {
		return t.shape[0], len(t.shape), true
	}
	return Dim{}, 0, false
}

// isBatch reports whether d is the symbolic batch.
func (br *batchRewriter) isBatch(d Dim) bool { return sameDim(d, br.sym) }

// isFixed reports whether d is the fixed batch size.
func (br *batchRewriter) isFixed(d Dim) bool { return d.Known() && d.Value == br.b }

// constValues returns the values of an integer tensor inference knows all
// of, or ok false.
func (br *batchRewriter) constValues(name string) ([]int64, bool) {
	t := br.gr.info[name]
	if t == nil || len(t.value) == 0 {
		return nil, false
	}
	out := make([]int64, len(t.value))
	for i, d := range t.value {
		if !d.Known() {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}

// pass rewrites every conflict that shape inference shows and reports
// whether it changed anything.
func (br *batchRewriter) pass() bool {
	g := br.gr.g
	br.producer = map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			br.producer[o] = n
		}
	}
	clear(br.fixed)
	br.before = map[*onnxpb.NodeProto][]*onnxpb.NodeProto{}
	nChanges := len(br.changes)
	for _, n := range g.GetNode() {
		if canonicalDomain(n.GetDomain()) != "" {
			continue
		}
		switch op := n.GetOpType(); {
		case op == "Reshape":
			br.reshape(n)
		case op == "Concat":
			br.concat(n)
		case br.b > 1 && broadcastOps[op]:
			br.broadcast(n)
		}
	}
	if len(br.changes) == nChanges {
		return false
	}
	// The new front nodes go after the earlier passes' ones, which they
	// may read; nodes made for one consumer go right before it.
	isFront := map[*onnxpb.NodeProto]bool{}
	for _, n := range br.front {
		isFront[n] = true
	}
	nodes := slices.Clone(br.front)
	for _, n := range g.GetNode() {
		if !isFront[n] {
			nodes = append(append(nodes, br.before[n]...), n)
		}
	}
	g.Node = nodes
	return true
}

// reshape rewrites a Reshape whose data has the batch as dimension 0 and
// whose constant target starts with B.
func (br *batchRewriter) reshape(n *onnxpb.NodeProto) {
	if len(n.GetInput()) < 2 {
		return
	}
	d, _, ok := br.lead(n.GetInput()[0])
	if !ok || !br.isBatch(d) {
		return
	}
	target, ok := br.constValues(n.GetInput()[1])
	if !ok || target[0] != br.b {
		return
	}
	c := &nodeCtx{gr: br.gr, n: n}
	if c.attrInt("allowzero", 0) == 0 {
		nt := slices.Clone(target)
		nt[0] = 0
		n.Input[1] = br.constInts(nt)
		br.changef(n, "shape %v → %v (0 copies the batch size)", target, nt)
		return
	}
	n.Input[1] = br.withBatch(target[1:])
	br.changef(n, "shape %v → %s", target, br.batchShape(target[1:]))
}

// concat fixes the inputs of a Concat along an axis other than 0 whose
// dimension 0 is B while another's is the batch.
func (br *batchRewriter) concat(n *onnxpb.NodeProto) {
	r := br.maxRank(n)
	if r == 0 {
		return
	}
	c := &nodeCtx{gr: br.gr, n: n}
	if a, err := normAxis(c.attrInt("axis", 0), r); err != nil || a == 0 {
		return
	}
	br.fixInputs(n, r, true)
}

// broadcast fixes the operands of a broadcasting operator (for B > 1)
// whose dimension 0 is B while another's, of the same rank, is the batch.
func (br *batchRewriter) broadcast(n *onnxpb.NodeProto) {
	if r := br.maxRank(n); r > 0 {
		br.fixInputs(n, r, false)
	}
}

// maxRank returns the largest rank of n's inputs of known shape, 0 if none.
func (br *batchRewriter) maxRank(n *onnxpb.NodeProto) int {
	r := 0
	for _, in := range n.GetInput() {
		if _, ri, ok := br.lead(in); ok {
			r = max(r, ri)
		}
	}
	return r
}

// fixInputs fixes the inputs of n of rank r whose dimension 0 is B, if
// another input of rank r has the batch as dimension 0.
//
// With unknown set (a Concat, whose inputs all have rank r), an input whose
// shape inference does not know is fixed too when B = 1: expanding it to
// [N, 1, …] changes nothing if its dimension 0 is the batch already, and
// broadcasts it if it is 1.
func (br *batchRewriter) fixInputs(n *onnxpb.NodeProto, r int, unknown bool) {
	batched := slices.ContainsFunc(n.GetInput(), func(in string) bool {
		d, ri, ok := br.lead(in)
		return ok && ri == r && br.isBatch(d)
	})
	if !batched {
		return
	}
	for j, in := range n.GetInput() {
		d, ri, ok := br.lead(in)
		if (ok && ri == r && br.isFixed(d)) || (!ok && unknown && br.b == 1 && !br.expanded[in]) {
			if name, ok := br.fix(n, in, r); ok {
				n.Input[j] = name
			}
		}
	}
}

// fix makes tensor t (rank r, dimension 0 = B), read by consumer, batch
// sized. It returns the name the consumer is to read, and ok false when it
// cannot.
func (br *batchRewriter) fix(consumer *onnxpb.NodeProto, t string, r int) (string, bool) {
	if name, ok := br.fixed[t]; ok {
		return name, true
	}
	if p := br.producer[t]; p != nil && br.fixProducer(p, r) {
		br.fixed[t] = t
		return t, true
	}
	if br.b != 1 || br.gr.opset < 8 { // Expand is opset 8
		return "", false
	}
	ones := make([]int64, r-1)
	for i := range ones {
		ones[i] = 1
	}
	out := br.gr.fresh("batch/" + t + "_expanded")
	br.before[consumer] = append(br.before[consumer], &onnxpb.NodeProto{
		Name: proto.String(br.gr.fresh("batch/Expand")), OpType: proto.String("Expand"),
		Input: []string{t, br.withBatch(ones)}, Output: []string{out},
	})
	br.changef(consumer, "input %q expanded to %s", t, br.batchShape(ones))
	br.fixed[t] = out
	br.expanded[out] = true
	return out, true
}

// fixProducer rewrites p, the producer of a tensor of rank r whose
// dimension 0 is B, when it is an Expand or ConstantOfShape whose constant
// shape starts with B, or a Tile of a [1, …] tensor whose constant repeats
// start with B; it reports whether it did.
func (br *batchRewriter) fixProducer(p *onnxpb.NodeProto, r int) bool {
	if canonicalDomain(p.GetDomain()) != "" {
		return false
	}
	k, what := 1, "shape" // the input holding the shape, or the repeats
	switch p.GetOpType() {
	case "Expand":
	case "ConstantOfShape":
		k = 0
	case "Tile":
		d, _, ok := br.lead(p.GetInput()[0])
		if !ok || !d.Known() || d.Value != 1 {
			return false
		}
		what = "repeats"
	default:
		return false
	}
	if k >= len(p.GetInput()) {
		return false
	}
	shape, ok := br.constValues(p.GetInput()[k])
	if !ok || len(shape) != r || shape[0] != br.b {
		return false
	}
	p.Input[k] = br.withBatch(shape[1:])
	br.changef(p, "%s %v → %s", what, shape, br.batchShape(shape[1:]))
	return true
}

// changef records a change to node n.
func (br *batchRewriter) changef(n *onnxpb.NodeProto, format string, args ...any) {
	br.changes = append(br.changes, fmt.Sprintf("node %q (%s): ", n.GetName(), n.GetOpType())+fmt.Sprintf(format, args...))
}

// batchShape formats [N, rest...] for the changes.
func (br *batchRewriter) batchShape(rest []int64) string {
	s := "[" + br.sym.Param
	for _, v := range rest {
		s += fmt.Sprintf(" %d", v)
	}
	return s + "]"
}

// frontNode adds a node that reads only the image and constants, and
// returns its output.
func (br *batchRewriter) frontNode(op string, in []string, attrs ...*onnxpb.AttributeProto) string {
	out := br.gr.fresh("batch/" + op)
	br.front = append(br.front, &onnxpb.NodeProto{Name: proto.String(br.gr.fresh("batch/" + op + "_node")), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs})
	return out
}

// constInts returns a Constant node's 1-D int64 output holding vals
// (a node rather than an initializer: models of IR version < 4 must list
// every initializer among the graph inputs).
func (br *batchRewriter) constInts(vals []int64) string {
	return br.frontNode("Constant", nil, attrTensor("value", newTensorInt64("", []int64{int64(len(vals))}, vals)))
}

// withBatch returns a 1-D int64 tensor [N, rest...], N the image's batch
// size at run time.
func (br *batchRewriter) withBatch(rest []int64) string {
	if br.batch == "" {
		br.batch = br.frontNode("Gather", []string{br.frontNode("Shape", []string{br.image}), br.constInts([]int64{0})}, attrInt("axis", 0))
	}
	if len(rest) == 0 {
		return br.batch
	}
	return br.frontNode("Concat", []string{br.batch, br.constInts(rest)}, attrInt("axis", 0))
}

// redeclare updates the declared shapes of graph outputs and value_info
// whose dimension 0 is B: to the batch where inference says so (outputs
// also where it cannot tell), else, if inference cannot tell, to an
// unknown size.
func (br *batchRewriter) redeclare() {
	g := br.gr.g
	for k, vis := range [][]*onnxpb.ValueInfoProto{g.GetOutput(), g.GetValueInfo()} {
		for _, vi := range vis {
			dims := vi.GetType().GetTensorType().GetShape().GetDim()
			if len(dims) == 0 || dims[0].GetDimValue() != br.b {
				continue
			}
			d, _, ok := br.lead(vi.GetName())
			switch {
			case ok && br.isFixed(d):
			case (ok && br.isBatch(d)) || k == 0:
				dims[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: br.sym.Param}}
			default:
				dims[0] = &onnxpb.TensorShapeProto_Dimension{}
			}
		}
	}
}
