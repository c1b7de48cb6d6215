package onnxgrad

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Model-local functions (https://onnx.ai/onnx/repo-docs/IR.html#functions):
// PyTorch 2's dynamo exporter (torch.onnx.dynamo_export, torch 2.1–2.4)
// writes each aten operator as a FunctionProto in a domain of its own, such
// as "pkg.onnxscript.torch_lib", and the graph as calls of them. onnxgrad's
// rules know standard operators, so functions are inlined when a model is
// read: each call becomes the function's body, its tensors renamed, its
// attribute references bound to the call's attributes.

// maxInlineDepth bounds nested function calls; a function that calls
// itself, directly or not, is an error. maxInlinedNodes bounds the nodes
// inlining makes, which nested calls multiply (a file of a few kilobytes
// could otherwise ask for billions).
const (
	maxInlineDepth  = 32
	maxInlinedNodes = 1 << 20
)

// functionKey identifies a function: its domain and name.
type functionKey struct{ domain, name string }

// inlineFunctions replaces every call of one of m's local functions by the
// function's body and then drops the functions, and the operator-set
// domains only they used. name is the model's file name, for errors.
func inlineFunctions(m *onnxpb.ModelProto, name string) error {
	if len(m.GetFunctions()) == 0 || m.GetGraph() == nil {
		return nil
	}
	in := &inliner{file: name, fns: map[functionKey]*onnxpb.FunctionProto{}, used: map[string]bool{}, opset: Opset(m)}
	for _, f := range m.GetFunctions() {
		k := functionKey{canonicalDomain(f.GetDomain()), f.GetName()}
		if _, dup := in.fns[k]; dup {
			return &FormatError{File: name, Field: "functions", Msg: fmt.Sprintf("function %q of domain %q is defined twice (overloads are not supported)", k.name, k.domain)}
		}
		in.fns[k] = f
	}
	g := m.GetGraph()
	markNames(g, in.used)
	var nodes []*onnxpb.NodeProto
	for _, n := range g.GetNode() {
		out, err := in.expand(n, 0)
		if err != nil {
			return err
		}
		nodes = append(nodes, out...)
	}
	g.Node = nodes
	imported := map[string]bool{}
	for _, op := range m.GetOpsetImport() {
		imported[canonicalDomain(op.GetDomain())] = true
	}
	for _, op := range in.imports {
		if !imported[canonicalDomain(op.GetDomain())] {
			imported[canonicalDomain(op.GetDomain())] = true
			m.OpsetImport = append(m.OpsetImport, proto.Clone(op).(*onnxpb.OperatorSetIdProto))
		}
	}
	usedDomains := map[string]bool{"": true}
	for _, n := range g.GetNode() {
		usedDomains[canonicalDomain(n.GetDomain())] = true
	}
	m.OpsetImport = slices.DeleteFunc(m.OpsetImport, func(op *onnxpb.OperatorSetIdProto) bool {
		d := canonicalDomain(op.GetDomain())
		return !usedDomains[d] && in.fnDomain(d)
	})
	m.Functions = nil
	return nil
}

// inliner is the state of inlineFunctions.
type inliner struct {
	file    string
	fns     map[functionKey]*onnxpb.FunctionProto
	used    map[string]bool // tensor and node names in use
	opset   int64           // the model's default-domain opset
	imports []*onnxpb.OperatorSetIdProto
	made    int // nodes made so far
}

// fnDomain reports whether domain d holds one of the model's functions.
func (in *inliner) fnDomain(d string) bool {
	for k := range in.fns {
		if k.domain == d {
			return true
		}
	}
	return false
}

// fresh returns a name not in use, hint itself when free.
func (in *inliner) fresh(hint string) string {
	name := hint
	for i := 1; in.used[name]; i++ {
		name = fmt.Sprintf("%s_%d", hint, i)
	}
	in.used[name] = true
	return name
}

// expand returns n, or, when n calls a local function, the function's body
// bound to n's inputs, outputs and attributes, with the calls in it
// expanded in turn.
func (in *inliner) expand(n *onnxpb.NodeProto, depth int) ([]*onnxpb.NodeProto, error) {
	f := in.fns[functionKey{canonicalDomain(n.GetDomain()), n.GetOpType()}]
	if f == nil {
		return []*onnxpb.NodeProto{n}, nil
	}
	ferr := func(format string, args ...any) error {
		return &FormatError{File: in.file, Field: fmt.Sprintf("function %q called by node %q", f.GetName(), n.GetName()), Msg: fmt.Sprintf(format, args...)}
	}
	if depth >= maxInlineDepth {
		return nil, ferr("calls nest deeper than %d (a function that calls itself?)", maxInlineDepth)
	}
	for _, op := range f.GetOpsetImport() {
		if canonicalDomain(op.GetDomain()) == "" && op.GetVersion() != in.opset {
			return nil, ferr("the body uses default-domain opset %d, the model %d", op.GetVersion(), in.opset)
		}
	}
	in.imports = append(in.imports, f.GetOpsetImport()...)
	if len(n.GetInput()) > len(f.GetInput()) || len(n.GetOutput()) > len(f.GetOutput()) {
		return nil, ferr("%d inputs and %d outputs for a function of %d and %d", len(n.GetInput()), len(n.GetOutput()), len(f.GetInput()), len(f.GetOutput()))
	}
	rename := map[string]string{"": ""}
	for i, formal := range f.GetInput() {
		rename[formal] = ""
		if i < len(n.GetInput()) {
			rename[formal] = n.GetInput()[i]
		}
	}
	for i, formal := range f.GetOutput() {
		if i < len(n.GetOutput()) {
			rename[formal] = n.GetOutput()[i]
		}
	}
	bound := map[string]*onnxpb.AttributeProto{}
	defaults, err := functionAttributeDefaults(f)
	if err != nil {
		return nil, ferr("%v", err)
	}
	for _, a := range defaults {
		bound[a.GetName()] = a
	}
	for _, a := range n.GetAttribute() {
		bound[a.GetName()] = a
	}
	prefix := n.GetName()
	if prefix == "" {
		prefix = f.GetName()
	}
	var out []*onnxpb.NodeProto
	for _, b := range f.GetNode() {
		if in.made++; in.made > maxInlinedNodes {
			return nil, ferr("inlining makes more than %d nodes", maxInlinedNodes)
		}
		c := proto.Clone(b).(*onnxpb.NodeProto)
		for _, a := range c.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return nil, ferr("node %q of the body has a subgraph (attribute %q), which onnxgrad does not inline", b.GetName(), a.GetName())
			}
		}
		c.Name = proto.String(in.fresh(prefix + "/" + b.GetName()))
		for i, t := range c.GetInput() {
			c.Input[i] = in.bind(rename, prefix, t)
		}
		for i, t := range c.GetOutput() {
			c.Output[i] = in.bind(rename, prefix, t)
		}
		var attrs []*onnxpb.AttributeProto
		for _, a := range c.GetAttribute() {
			ref := a.GetRefAttrName()
			if ref == "" {
				attrs = append(attrs, a)
				continue
			}
			v, ok := bound[ref]
			if !ok {
				continue // not given: the operator's own default applies
			}
			v = proto.Clone(v).(*onnxpb.AttributeProto)
			v.Name = proto.String(a.GetName())
			attrs = append(attrs, v)
		}
		c.Attribute = attrs
		more, err := in.expand(c, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// bind returns the name tensor t of a function body has in the graph: the
// call's input or output for a formal parameter, else a fresh name.
func (in *inliner) bind(rename map[string]string, prefix, t string) string {
	if name, ok := rename[t]; ok {
		return name
	}
	name := in.fresh(prefix + "/" + t)
	rename[t] = name
	return name
}

// functionAttributeDefaults returns the attributes a function declares with
// default values (attribute_proto, field 11 of FunctionProto since ONNX
// 1.13, which the ONNX 1.12 schema our types come from keeps as unknown
// fields).
func functionAttributeDefaults(f *onnxpb.FunctionProto) ([]*onnxpb.AttributeProto, error) {
	var out []*onnxpb.AttributeProto
	b := f.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 11 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			a := new(onnxpb.AttributeProto)
			if err := proto.Unmarshal(v, a); err != nil {
				return nil, fmt.Errorf("attribute_proto: %w", err)
			}
			out = append(out, a)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return out, nil
}

// markNames records every tensor and node name of g in used.
func markNames(g *onnxpb.GraphProto, used map[string]bool) {
	for _, t := range g.GetInitializer() {
		used[t.GetName()] = true
	}
	for _, vi := range g.GetInput() {
		used[vi.GetName()] = true
	}
	for _, n := range g.GetNode() {
		used[n.GetName()] = true
		for _, o := range n.GetOutput() {
			used[o] = true
		}
	}
}
