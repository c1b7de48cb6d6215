package onnxgrad

import (
	"errors"
	"sort"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TensorDesc describes a graph input or output.
type TensorDesc struct {
	Name  string
	Elem  string // ONNX element type, e.g. "FLOAT"
	Shape Shape  // nil when the rank is unknown
}

// OpCount is one line of a model's operator histogram.
type OpCount struct {
	Op    string // "domain:Op" outside the default domain
	Count int
	// Differentiable is true when onnxgrad has a gradient rule for the op.
	Differentiable bool
}

// ModelInfo summarises a model for people deciding whether onnxgrad can
// differentiate it.
type ModelInfo struct {
	IRVersion int64
	Opset     int64
	Producer  string
	Inputs    []TensorDesc // graph inputs that are not initializers
	Outputs   []TensorDesc
	Ops       []OpCount // sorted by op name
	Metadata  map[string]string
	// Params counts the floating-point weights in initializers.
	Params int64
	// Unsupported lists the nodes on the path from the first input to the
	// first output that have no gradient rule.
	Unsupported []*UnsupportedOpError
	// GradErr is why Build fails for the first output with respect to the
	// first input (Jacobian mode for [N, K] outputs, VJP otherwise), or nil.
	GradErr error
}

// Inspect describes m; file names it in errors.
func Inspect(m *onnxpb.ModelProto, file string) (*ModelInfo, error) {
	if err := Validate(m, file); err != nil {
		return nil, err
	}
	info := &ModelInfo{IRVersion: m.GetIrVersion(), Opset: Opset(m), Producer: m.GetProducerName(), Metadata: map[string]string{}}
	for _, p := range m.GetMetadataProps() {
		info.Metadata[p.GetKey()] = p.GetValue()
	}
	gr := newGraph(m, file)
	gr.infer()
	for _, vi := range graphInputs(m) {
		info.Inputs = append(info.Inputs, describe(vi, gr))
	}
	for _, vi := range m.GetGraph().GetOutput() {
		info.Outputs = append(info.Outputs, describe(vi, gr))
	}
	for op, n := range opHistogram(m.GetGraph()) {
		r, ok := rules[op]
		info.Ops = append(info.Ops, OpCount{Op: op, Count: n, Differentiable: ok && r.grad != nil})
	}
	sort.Slice(info.Ops, func(i, j int) bool { return info.Ops[i].Op < info.Ops[j].Op })
	for _, t := range m.GetGraph().GetInitializer() {
		if isFloatType(t.GetDataType()) {
			n, _ := numElements(t.GetDims())
			info.Params += n
		}
	}
	if len(info.Inputs) == 0 {
		info.GradErr = &FormatError{File: file, Field: "graph.input", Msg: "the model has no inputs"}
		return info, nil
	}
	path, _ := differentiablePath(m.GetGraph(), gr, []string{info.Inputs[0].Name}, info.Outputs[0].Name)
	info.Unsupported = unsupportedOps(path, file)
	mode := VJP
	if s := info.Outputs[0].Shape; len(s) == 2 {
		mode = Jacobian
	}
	if _, err := Build(m, Options{Mode: mode, File: file}); err != nil {
		info.GradErr = err
	}
	return info, nil
}

func describe(vi *onnxpb.ValueInfoProto, gr *graph) TensorDesc {
	d := TensorDesc{Name: vi.GetName()}
	t := gr.info[vi.GetName()]
	if t == nil {
		t = infoFromValueInfo(vi)
	}
	if t != nil {
		d.Elem = t.elem.String()
		if t.hasShape {
			d.Shape = t.shape
		}
	}
	return d
}

// Differentiable reports whether Build succeeds on the model's first input
// and output.
func (i *ModelInfo) Differentiable() bool { return i.GradErr == nil && len(i.Unsupported) == 0 }

// IsUnsupported reports whether err is (or wraps) an UnsupportedOpError.
func IsUnsupported(err error) bool {
	var u *UnsupportedOpError
	return errors.As(err, &u)
}
