package onnxgrad

import (
	"errors"
	"fmt"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// opRule is everything onnxgrad knows about one ONNX operator: how to infer
// its outputs' types and shapes, and how to propagate gradients through it
// (nil for operators that are never differentiated, such as those computing
// shapes).
type opRule struct {
	infer func(c *nodeCtx) error
	grad  func(c *gradCtx) error
}

// NodeError reports a problem with one node of a model: an attribute of the
// wrong type, shapes that do not fit, a form of an operator that onnxgrad
// cannot differentiate.
type NodeError struct {
	File   string
	Node   string
	OpType string
	Msg    string
	// Err, when set, classifies the problem; ErrUnknownShape marks a rule
	// that could not decide for lack of static shapes or constant values.
	Err error
}

// Unwrap returns e.Err.
func (e *NodeError) Unwrap() error { return e.Err }

// ErrUnknownShape classifies a NodeError raised because a shape or an
// integer value a rule needs is not known statically (a symbolic size, an
// input computed at run time), as opposed to a malformed node. Fixing the
// model input's shape (Options.InputShape) often resolves it.
var ErrUnknownShape = errors.New("onnxgrad: shape or value not known statically")

func (e *NodeError) Error() string {
	s := "onnxgrad: "
	if e.File != "" {
		s += e.File + ": "
	}
	return s + fmt.Sprintf("node %q (%s): %s", e.Node, e.OpType, e.Msg)
}

// UnsupportedOpError reports an operator that onnxgrad has no rule for: on
// the differentiated path (no gradient rule), or upstream of it where the
// shapes it leaves unknown are needed (no shape rule).
type UnsupportedOpError struct {
	File   string
	Node   string
	OpType string // "domain:Op" outside the default domain
	// ShapeOnly is set when the op is not differentiated but its output
	// shapes are needed downstream.
	ShapeOnly bool
}

// Reason says which rule is missing.
func (e *UnsupportedOpError) Reason() string {
	if e.ShapeOnly {
		return "no shape rule, so the shapes after it are unknown"
	}
	return "no gradient rule"
}

func (e *UnsupportedOpError) Error() string {
	s := "onnxgrad: "
	if e.File != "" {
		s += e.File + ": "
	}
	return s + fmt.Sprintf("unsupported op %q in node %q: %s", e.OpType, e.Node, e.Reason())
}

// nodeCtx gives a rule typed access to one node's inputs, outputs and
// attributes. Attribute readers record the first error in err rather than
// returning it, so rules read as straight-line code; the caller checks err.
type nodeCtx struct {
	gr  *graph
	n   *onnxpb.NodeProto
	err error
}

func (c *nodeCtx) errorf(format string, args ...any) error {
	return &NodeError{File: c.gr.file, Node: c.n.GetName(), OpType: c.n.GetOpType(), Msg: fmt.Sprintf(format, args...)}
}

func (c *nodeCtx) fail(format string, args ...any) {
	if c.err == nil {
		c.err = c.errorf(format, args...)
	}
}

// unknownf is errorf for a rule that cannot decide because a shape or value
// is not known statically (the error wraps ErrUnknownShape).
func (c *nodeCtx) unknownf(format string, args ...any) error {
	e := c.errorf(format, args...).(*NodeError)
	e.Err = ErrUnknownShape
	return e
}

// failUnknown records an unknownf error unless one is recorded already.
func (c *nodeCtx) failUnknown(format string, args ...any) {
	if c.err == nil {
		c.err = c.unknownf(format, args...)
	}
}

// input returns the name of input i, or "" when absent.
func (c *nodeCtx) input(i int) string {
	if i < len(c.n.GetInput()) {
		return c.n.GetInput()[i]
	}
	return ""
}

func (c *nodeCtx) output(i int) string {
	if i < len(c.n.GetOutput()) {
		return c.n.GetOutput()[i]
	}
	return ""
}

// in returns what is known of input i, or nil.
func (c *nodeCtx) in(i int) *tensorInfo {
	if name := c.input(i); name != "" {
		return c.gr.info[name]
	}
	return nil
}

func (c *nodeCtx) out(i int) *tensorInfo {
	if name := c.output(i); name != "" {
		return c.gr.info[name]
	}
	return nil
}

// shapeIn returns input i's shape, failing when its rank is unknown.
func (c *nodeCtx) shapeIn(i int) Shape {
	t := c.in(i)
	if t == nil || !t.hasShape {
		c.failUnknown("the shape of input %d (%q) is unknown; give the model input a static shape", i, c.input(i))
		return nil
	}
	return t.shape
}

func (c *nodeCtx) shapeOut(i int) Shape {
	t := c.out(i)
	if t == nil || !t.hasShape {
		c.failUnknown("the shape of output %d (%q) is unknown", i, c.output(i))
		return nil
	}
	return t.shape
}

// staticIn returns input i's dims, failing unless all are known.
func (c *nodeCtx) staticIn(i int) []int64 {
	s := c.shapeIn(i)
	if s == nil {
		return nil
	}
	dims, ok := s.Static()
	if !ok {
		c.failUnknown("needs a static shape for input %d (%q), got %v; set the input shape explicitly", i, c.input(i), s)
	}
	return dims
}

// intsIn returns the tracked integer values of input i (axes, pads, shapes).
func (c *nodeCtx) intsIn(i int) []int64 {
	t := c.in(i)
	if t == nil || t.value == nil {
		c.failUnknown("input %d (%q) must be a constant integer tensor", i, c.input(i))
		return nil
	}
	out := make([]int64, len(t.value))
	for j, d := range t.value {
		if !d.Known() {
			c.failUnknown("input %d (%q) must be a constant integer tensor, element %d is %s", i, c.input(i), j, d)
			return nil
		}
		out[j] = d.Value
	}
	return out
}

// setOut records what is known of output i.
func (c *nodeCtx) setOut(i int, info *tensorInfo) {
	if name := c.output(i); name != "" && info != nil {
		c.gr.info[name] = info
	}
}

func (c *nodeCtx) attr(name string) *onnxpb.AttributeProto {
	for _, a := range c.n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func (c *nodeCtx) has(name string) bool { return c.attr(name) != nil }

func (c *nodeCtx) attrInt(name string, def int64) int64 {
	a := c.attr(name)
	if a == nil {
		return def
	}
	if a.GetType() != onnxpb.AttributeProto_INT {
		c.fail("attribute %q is %s, want INT", name, a.GetType())
		return def
	}
	return a.GetI()
}

func (c *nodeCtx) attrInts(name string, def []int64) []int64 {
	a := c.attr(name)
	if a == nil {
		return def
	}
	if a.GetType() != onnxpb.AttributeProto_INTS {
		c.fail("attribute %q is %s, want INTS", name, a.GetType())
		return def
	}
	return a.GetInts()
}

func (c *nodeCtx) attrFloat(name string, def float32) float32 {
	a := c.attr(name)
	if a == nil {
		return def
	}
	if a.GetType() != onnxpb.AttributeProto_FLOAT {
		c.fail("attribute %q is %s, want FLOAT", name, a.GetType())
		return def
	}
	return a.GetF()
}

func (c *nodeCtx) attrString(name, def string) string {
	a := c.attr(name)
	if a == nil {
		return def
	}
	if a.GetType() != onnxpb.AttributeProto_STRING {
		c.fail("attribute %q is %s, want STRING", name, a.GetType())
		return def
	}
	return string(a.GetS())
}

// sameAs returns a tensorInfo with input i's type and shape.
func (c *nodeCtx) sameAs(i int) *tensorInfo {
	t := c.in(i)
	if t == nil {
		return nil
	}
	return &tensorInfo{elem: t.elem, shape: t.shape, hasShape: t.hasShape}
}

// elem returns the element type of input 0.
func (c *nodeCtx) elem() onnxpb.TensorProto_DataType {
	if t := c.in(0); t != nil {
		return t.elem
	}
	return onnxpb.TensorProto_UNDEFINED
}
