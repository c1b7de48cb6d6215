package onnxgrad

// Opset upgrade: backward rules emit opset-13 (or newer) operators, and a
// model has one default-domain opset, so models exported with an older opset
// are rewritten first: every operator whose form changed between the
// model's opset and 13 is converted to its opset-13 form.

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// minUpgradableOpset is the oldest opset upgradeTo13 converts: opsets before
// 7 used legacy broadcasting attributes (and consumed_inputs) whose
// semantics differ.
const minUpgradableOpset = 7

// upgradeTo13 rewrites gr's model, currently at opset gr.opset < 13, into
// opset 13 and re-runs shape inference. It needs the shapes inferred at the
// old opset (for Softmax's rank).
func (gr *graph) upgradeTo13() error {
	var nodes []*onnxpb.NodeProto
	for _, n := range gr.g.GetNode() {
		if canonicalDomain(n.GetDomain()) != "" {
			nodes = append(nodes, n)
			continue
		}
		c := &nodeCtx{gr: gr, n: n}
		out, err := c.upgrade()
		if err == nil {
			err = c.err
		}
		if err != nil {
			return err
		}
		nodes = append(nodes, out...)
	}
	gr.g.Node = nodes
	gr.opset = 13
	setOpset(gr.m, 13)
	gr.info = map[string]*tensorInfo{}
	gr.inferErr = map[*onnxpb.NodeProto]error{}
	gr.infer()
	return nil
}

// upgrade returns the opset-13 nodes equivalent to c's node.
func (c *nodeCtx) upgrade() ([]*onnxpb.NodeProto, error) {
	n, v := c.n, c.gr.opset
	elem := c.elem()
	if !isFloatType(int32(elem)) {
		elem = onnxpb.TensorProto_FLOAT // Pad and Clip values take the data's type; unknown here
	}
	switch op := n.GetOpType(); {
	case (op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && c.has("axes"):
		c.attrToInput("axes", 1)
	case op == "Split" && c.has("split"):
		c.attrToInput("split", 1)
	case op == "Slice" && v < 10:
		for i, name := range []string{"starts", "ends", "axes"} {
			if c.has(name) {
				c.attrToInput(name, 1+i)
			}
		}
	case op == "Reshape" && c.has("shape"):
		c.attrToInput("shape", 1)
	case op == "Pad" && v < 11:
		value := float64(c.attrFloat("value", 0))
		c.attrToInput("pads", 1)
		c.setInput(2, c.gr.scalar(elem, value))
		dropAttr(n, "value")
	case op == "Clip" && v < 11:
		for i, name := range []string{"min", "max"} {
			if c.has(name) {
				c.setInput(1+i, c.gr.scalar(elem, float64(c.attrFloat(name, 0))))
				dropAttr(n, name)
			}
		}
	case op == "Dropout" && v < 12:
		if c.output(1) != "" {
			return nil, c.errorf("the Dropout mask output cannot be upgraded to opset 13")
		}
		n.OpType = proto.String("Identity")
		n.Attribute = nil
		n.Output = n.Output[:1]
	case op == "BatchNormalization" && v < 9:
		if c.attrInt("spatial", 1) != 1 {
			return nil, c.errorf("BatchNormalization with spatial=0 is not supported")
		}
		dropAttr(n, "spatial")
		dropAttr(n, "is_test")
	case (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax"):
		return c.upgradeSoftmax()
	case op == "Upsample" || op == "Resize" && v < 11:
		return c.upgradeResize()
	case op == "Scatter":
		return nil, c.errorf("cannot upgrade %s from opset %d to 13; re-export the model with opset 13 or newer", op, v)
	}
	return []*onnxpb.NodeProto{n}, nil
}

// upgradeSoftmax converts the opset < 13 semantics, where the input is
// coerced to 2-D at axis (default 1), into opset 13's single-axis form:
// equal when axis is the last axis, else Flatten → Softmax → Reshape.
func (c *nodeCtx) upgradeSoftmax() ([]*onnxpb.NodeProto, error) {
	n := c.n
	x := c.shapeIn(0)
	if c.err != nil {
		return nil, c.err
	}
	a, err := normAxis(c.attrInt("axis", 1), len(x))
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	dropAttr(n, "axis")
	n.Attribute = append(n.Attribute, attrInt("axis", -1))
	if a == len(x)-1 {
		return []*onnxpb.NodeProto{n}, nil
	}
	in, out := n.GetInput()[0], n.GetOutput()[0]
	flat, soft, shape := c.gr.fresh(in+"_flat"), c.gr.fresh(out+"_2d"), c.gr.fresh(in+"_shape")
	node := func(op string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(c.gr.fresh(n.GetName() + "/" + op)), OpType: proto.String(op), Input: inputs, Output: []string{output}, Attribute: attrs}
	}
	n.Input, n.Output = []string{flat}, []string{soft}
	return []*onnxpb.NodeProto{
		node("Flatten", []string{in}, flat, attrInt("axis", int64(a))),
		n,
		node("Shape", []string{in}, shape),
		node("Reshape", []string{soft, shape}, out),
	}, nil
}

// attrToInput moves an INTS attribute into input i as an INT64 initializer.
func (c *nodeCtx) attrToInput(name string, i int) {
	c.setInput(i, c.gr.ints(c.attrInts(name, nil)...))
	dropAttr(c.n, name)
}

// setInput sets input i of the node, padding skipped optional inputs.
func (c *nodeCtx) setInput(i int, name string) {
	for len(c.n.Input) <= i {
		c.n.Input = append(c.n.Input, "")
	}
	c.n.Input[i] = name
}

func dropAttr(n *onnxpb.NodeProto, name string) {
	n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool { return a.GetName() == name })
}
