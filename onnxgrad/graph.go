package onnxgrad

import (
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// graph is a model under analysis: the tensors' inferred types, shapes and
// tracked integer values, and a builder for new nodes and initializers.
type graph struct {
	file  string
	m     *onnxpb.ModelProto
	g     *onnxpb.GraphProto
	opset int64
	info  map[string]*tensorInfo
	// names in use, so that new tensors never collide with existing ones.
	names   map[string]bool
	counter int
	// newNodes are appended to the graph after the forward nodes.
	newNodes []*onnxpb.NodeProto
	consts   map[string]string
	// inferErr holds the shape-inference failure of each node that had one.
	inferErr map[*onnxpb.NodeProto]error
	// declared holds the types and shapes the model's value_info and graph
	// outputs declare.
	declared map[string]*tensorInfo
	// minOpset is the smallest default-domain opset the emitted nodes need.
	minOpset int64
}

func newGraph(m *onnxpb.ModelProto, file string) *graph {
	gr := &graph{file: file, m: m, g: m.GetGraph(), opset: Opset(m), info: map[string]*tensorInfo{},
		names: map[string]bool{}, consts: map[string]string{}, inferErr: map[*onnxpb.NodeProto]error{}, minOpset: 13}
	for _, t := range gr.g.GetInitializer() {
		gr.names[t.GetName()] = true
	}
	for _, vi := range gr.g.GetInput() {
		gr.names[vi.GetName()] = true
	}
	for _, n := range gr.g.GetNode() {
		gr.names[n.GetName()] = true
		for _, o := range n.GetOutput() {
			gr.names[o] = true
		}
	}
	return gr
}

// infer runs shape inference over the forward graph. Ops without a rule, or
// whose rule cannot decide, leave their outputs with whatever the model's
// value_info declares. A node whose rule fails (often because an op without
// a rule upstream left its input unknown) is recorded in inferErr and
// inference goes on; the error matters only if the node is differentiated.
// What a rule infers is merged with what the model declares (see
// mergeDeclared): a declaration is never replaced by an unknown.
func (gr *graph) infer() {
	gr.declared = map[string]*tensorInfo{}
	for _, vi := range append(append([]*onnxpb.ValueInfoProto{}, gr.g.GetValueInfo()...), gr.g.GetOutput()...) {
		if info := infoFromValueInfo(vi); info != nil {
			gr.declared[vi.GetName()] = info
		}
	}
	for _, t := range gr.g.GetInitializer() {
		gr.info[t.GetName()] = infoFromTensor(t)
	}
	for _, vi := range gr.g.GetInput() {
		if _, ok := gr.info[vi.GetName()]; ok {
			continue // an initializer that is also listed as an input
		}
		if info := infoFromValueInfo(vi); info != nil {
			gr.info[vi.GetName()] = info
		}
	}
	for _, n := range gr.g.GetNode() {
		if err := gr.inferNode(n); err != nil {
			gr.inferErr[n] = err
		}
	}
}

// inferNode runs n's shape rule, if it has one, and records what is known of
// its outputs, merged with their declarations. It returns the rule's error.
func (gr *graph) inferNode(n *onnxpb.NodeProto) error {
	var err error
	if infer := shapeRule(n); infer != nil {
		c := &nodeCtx{gr: gr, n: n}
		err = infer(c)
		if err == nil {
			err = c.err
		}
	}
	for _, o := range n.GetOutput() {
		if o != "" {
			gr.info[o] = mergeDeclared(gr.info[o], gr.declared[o])
		}
	}
	return err
}

// shapeRule returns n's shape rule; nil for an op outside the default
// domain or without one.
func shapeRule(n *onnxpb.NodeProto) func(*nodeCtx) error {
	if r, ok := rules[n.GetOpType()]; ok && canonicalDomain(n.GetDomain()) == "" {
		return r.infer
	}
	return nil
}

// mergeDeclared combines what inference found of a tensor with what the
// model declares for it: inferred facts win where they are known, the
// declaration fills in an unknown element type, an unknown rank, and
// dimensions inference left anonymous. A rule that gives up (often after an
// op without a rule upstream) thus never turns a declared FLOAT [N, 10]
// output into UNDEFINED of unknown shape.
func mergeDeclared(inferred, declared *tensorInfo) *tensorInfo {
	switch {
	case declared == nil:
		return inferred
	case inferred == nil:
		return declared
	}
	out := *inferred
	if out.elem == onnxpb.TensorProto_UNDEFINED {
		out.elem = declared.elem
	}
	switch {
	case !out.hasShape && declared.hasShape:
		out.shape, out.hasShape = slices.Clone(declared.shape), true
	case out.hasShape && declared.hasShape && len(out.shape) == len(declared.shape):
		out.shape = slices.Clone(out.shape)
		for i, d := range out.shape {
			if isAnonymous(d) && !isAnonymous(declared.shape[i]) {
				out.shape[i] = declared.shape[i]
			}
		}
	}
	return &out
}

// isConst reports whether tensor name is a constant that onnxruntime can
// fold: an initializer that is not also a graph input (which a run may
// override), or the output of a Constant node.
func (gr *graph) isConst(name string) bool {
	for _, vi := range gr.g.GetInput() {
		if vi.GetName() == name {
			return false
		}
	}
	for _, t := range gr.g.GetInitializer() {
		if t.GetName() == name {
			return true
		}
	}
	for _, n := range gr.g.GetNode() {
		if n.GetOpType() == "Constant" && canonicalDomain(n.GetDomain()) == "" && slices.Contains(n.GetOutput(), name) {
			return true
		}
	}
	return false
}

// fresh returns a tensor or node name not used anywhere in the graph: hint
// itself if it is free, else hint with a numeric suffix.
func (gr *graph) fresh(hint string) string {
	if !gr.names[hint] {
		gr.names[hint] = true
		return hint
	}
	for {
		gr.counter++
		name := fmt.Sprintf("%s_%d", hint, gr.counter)
		if !gr.names[name] {
			gr.names[name] = true
			return name
		}
	}
}

// opN appends a node with nOut outputs and returns their names.
func (gr *graph) opN(opType string, nOut int, inputs []string, attrs ...*onnxpb.AttributeProto) []string {
	outs := make([]string, nOut)
	for i := range outs {
		outs[i] = gr.fresh("grad/" + opType)
	}
	gr.newNodes = append(gr.newNodes, &onnxpb.NodeProto{
		Name:      proto.String(gr.fresh("grad/" + opType + "_node")),
		OpType:    proto.String(opType),
		Input:     inputs,
		Output:    outs,
		Attribute: attrs,
	})
	return outs
}

// op appends a single-output node and returns its output's name.
func (gr *graph) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	return gr.opN(opType, 1, inputs, attrs...)[0]
}

// addInitializer adds t (whose name is set here) and returns its name.
func (gr *graph) addInitializer(hint string, t *onnxpb.TensorProto) string {
	name := gr.fresh(hint)
	t.Name = proto.String(name)
	gr.g.Initializer = append(gr.g.Initializer, t)
	gr.info[name] = infoFromTensor(t)
	return name
}

// addInput appends a graph input and records what is known of it.
func (gr *graph) addInput(name string, elem onnxpb.TensorProto_DataType, shape Shape) {
	gr.g.Input = append(gr.g.Input, tensorValueInfo(name, elem, shape))
	gr.info[name] = &tensorInfo{elem: elem, shape: shape, hasShape: shape != nil}
}

// constInts returns an INT64 initializer with the given values: a 1-D tensor,
// or a scalar when scalar is true. Equal constants are shared.
func (gr *graph) constInts(vals []int64, scalar bool) string {
	key := fmt.Sprint("i", scalar, vals)
	if name, ok := gr.consts[key]; ok {
		return name
	}
	dims := []int64{int64(len(vals))}
	if scalar {
		dims = nil
	}
	name := gr.addInitializer("grad/const", newTensorInt64("", dims, vals))
	gr.consts[key] = name
	return name
}

func (gr *graph) ints(vals ...int64) string { return gr.constInts(vals, false) }

// maxConstElements bounds the constants a backward rule may create (one-hot
// seeds, pooling divisors, gather matrices): 2²⁴ elements, 64 MiB of float32.
const maxConstElements = 1 << 24

// tooLarge reports whether a constant of these dims exceeds maxConstElements.
func tooLarge(dims ...int64) bool {
	n, err := numElements(dims)
	return err != nil || n > maxConstElements
}

// constFloat returns a floating-point initializer of type dt and shape dims.
func (gr *graph) constFloat(dt onnxpb.TensorProto_DataType, dims []int64, vals []float64) string {
	key := fmt.Sprint("f", dt, dims, vals)
	if len(vals) <= 16 {
		if name, ok := gr.consts[key]; ok {
			return name
		}
	}
	name := gr.addInitializer("grad/const", newTensorFloat("", dt, dims, vals))
	if len(vals) <= 16 {
		gr.consts[key] = name
	}
	return name
}

// scalar returns a 0-d floating-point constant.
func (gr *graph) scalar(dt onnxpb.TensorProto_DataType, v float64) string {
	return gr.constFloat(dt, nil, []float64{v})
}

// needOpset records that an emitted node needs at least opset v.
func (gr *graph) needOpset(v int64) { gr.minOpset = max(gr.minOpset, v) }

// Attribute constructors.

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func attrTensor(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// opHistogram counts the nodes of each op type ("domain:Op" outside the
// default domain).
func opHistogram(g *onnxpb.GraphProto) map[string]int {
	h := map[string]int{}
	for _, n := range g.GetNode() {
		h[qualifiedOp(n)]++
	}
	return h
}

func qualifiedOp(n *onnxpb.NodeProto) string {
	if d := canonicalDomain(n.GetDomain()); d != "" {
		return d + ":" + n.GetOpType()
	}
	return n.GetOpType()
}

// SupportedOps lists the ONNX operators onnxgrad can differentiate.
func SupportedOps() []string {
	var ops []string
	for name, r := range rules {
		if r.grad != nil {
			ops = append(ops, name)
		}
	}
	sort.Strings(ops)
	return ops
}
