package model

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Opset is the ONNX operator set version of the graphs this package emits.
const Opset = 13

// irVersion is the first ONNX IR version that allows opset 13.
const irVersion = 7

// Producer is the producer_name of the models this package emits.
const Producer = "marginaudit"

// Weights says where Graph puts the weights.
type Weights int

const (
	// AsInitializers stores the weights' current values in the graph, as
	// in an exported checkpoint.
	AsInitializers Weights = iota
	// AsInputs declares the weights as graph inputs (after "input", in the
	// order of Model.Params), to be fed on every run.
	AsInputs
)

// Graph returns the inference graph: "input" [N, C, H, W] → "logits" [N, K].
// With AsInitializers the weights are copied into the graph.
func (m *Model) Graph(w Weights) *onnxpb.ModelProto {
	b := m.builder(w)
	b.out(OutputName, m.Classes)
	return b.model()
}

// LossGraph returns the training graph: the inference graph with the weights
// as inputs, one more input "target" [N, K] (the target distribution of each
// image, one-hot labels for standard training), and a second output "loss"
// of shape [1], the mean cross-entropy over the batch:
//
//	loss = −(1/N) Σₙ Σₖ targetₙₖ · log softmax(logitsₙ)ₖ
//
// built from LogSoftmax, Mul, ReduceSum, Div and Neg, which onnxgrad
// differentiates; N is read from the target's shape, so one graph serves any
// batch size. (onnxgrad's ReduceMean rule needs a static size.) The loss is
// [1], not a scalar, because onnxruntime cannot hand a 0-d tensor from the
// forward pass to the backward pass (see ../../shared/onnxgrad-notes.md).
// The graph inputs are "input", the weights in order, then "target".
func (m *Model) LossGraph() *onnxpb.ModelProto {
	b := m.builder(AsInputs)
	b.out(OutputName, m.Classes)
	g := b.g
	g.Input = append(g.Input, valueInfo(TargetName, dimParam("N"), dimValue(int64(m.Classes))))
	logp := b.node("LogSoftmax", []string{OutputName}, "/loss/LogSoftmax", attrInt("axis", 1))
	ll := b.node("Mul", []string{logp, TargetName}, "/loss/Mul")
	perImage := b.node("ReduceSum", []string{ll, b.constInts("/loss/axis1", []int64{1})}, "/loss/ReduceSumK", attrInt("keepdims", 0))
	total := b.node("ReduceSum", []string{perImage, b.constInts("/loss/axis0", []int64{0})}, "/loss/ReduceSumN", attrInt("keepdims", 1))
	shape := b.node("Shape", []string{TargetName}, "/loss/Shape")
	n := b.node("Gather", []string{shape, b.constInts("/loss/index0", []int64{0})}, "/loss/Gather", attrInt("axis", 0))
	nf := b.node("Cast", []string{n}, "/loss/Cast", attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
	mean := b.node("Div", []string{total, nf}, "/loss/Div")
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("/loss/Neg"), OpType: proto.String("Neg"), Input: []string{mean}, Output: []string{LossName}})
	g.Output = append(g.Output, valueInfo(LossName, dimValue(1)))
	return b.model()
}

// LoadWeights copies the weights of a model's initializers into m. Every
// parameter of m must be there, with the same dimensions.
func (m *Model) LoadWeights(src *onnxpb.ModelProto) error {
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range src.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	for _, p := range m.Params {
		t := inits[p.Name]
		if t == nil {
			return fmt.Errorf("%w: no initializer %q", ErrBadArch, p.Name)
		}
		if !slices.Equal(t.GetDims(), p.Dims) {
			return fmt.Errorf("%w: initializer %q has dims %v, want %v", ErrBadArch, p.Name, t.GetDims(), p.Dims)
		}
		data, err := onnxgrad.TensorFloat32(t)
		if err != nil {
			return fmt.Errorf("model: initializer %q: %w", p.Name, err)
		}
		if len(data) != len(p.Data) {
			return fmt.Errorf("%w: initializer %q has %d values, want %d", ErrBadArch, p.Name, len(data), len(p.Data))
		}
		copy(p.Data, data)
	}
	return nil
}

// builder emits the layers of m up to (not including) the output layer's
// final name.
type builder struct {
	m    *Model
	g    *onnxpb.GraphProto
	w    Weights
	x    string // the current activation
	next int    // index into m.Params
}

func (m *Model) builder(w Weights) *builder {
	b := &builder{m: m, w: w, x: InputName, g: &onnxpb.GraphProto{Name: proto.String(m.Arch.Kind)}}
	b.g.Input = append(b.g.Input, valueInfo(InputName, dimParam("N"), dimValue(int64(m.C)), dimValue(int64(m.H)), dimValue(int64(m.W))))
	if m.Arch.Kind == CNN {
		pad := int64(m.Arch.Kernel / 2)
		k := int64(m.Arch.Kernel)
		for i := range m.Arch.Channels {
			l := fmt.Sprintf("conv%d", i+1)
			wt, bias := b.param(), b.param()
			b.x = b.node("Conv", []string{b.x, wt, bias}, "/"+l+"/Conv",
				attrInts("kernel_shape", []int64{k, k}), attrInts("pads", []int64{pad, pad, pad, pad}), attrInts("strides", []int64{1, 1}))
			b.x = b.node("Relu", []string{b.x}, "/"+l+"/Relu")
			b.x = b.node("MaxPool", []string{b.x}, "/"+l+"/MaxPool",
				attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2}))
		}
	}
	b.x = b.node("Flatten", []string{b.x}, "/Flatten", attrInt("axis", 1))
	for i := range m.Arch.Hidden {
		l := fmt.Sprintf("fc%d", i+1)
		wt, bias := b.param(), b.param()
		b.x = b.node("Gemm", []string{b.x, wt, bias}, "/"+l+"/Gemm", attrInt("transB", 1))
		b.x = b.node("Relu", []string{b.x}, "/"+l+"/Relu")
	}
	return b
}

// out emits the output layer, writing its result to name.
func (b *builder) out(name string, classes int) {
	wt, bias := b.param(), b.param()
	l := fmt.Sprintf("fc%d", len(b.m.Arch.Hidden)+1)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: proto.String("/" + l + "/Gemm"), OpType: proto.String("Gemm"),
		Input: []string{b.x, wt, bias}, Output: []string{name}, Attribute: []*onnxpb.AttributeProto{attrInt("transB", 1)}})
	b.g.Output = append(b.g.Output, valueInfo(name, dimParam("N"), dimValue(int64(classes))))
	b.x = name
}

// param declares the next parameter as an initializer or input and returns
// its name.
func (b *builder) param() string {
	p := b.m.Params[b.next]
	b.next++
	if b.w == AsInitializers {
		b.g.Initializer = append(b.g.Initializer, onnxgrad.NewTensorFloat32(p.Name, p.Dims, p.Data))
	} else {
		dims := make([]*onnxpb.TensorShapeProto_Dimension, len(p.Dims))
		for i, d := range p.Dims {
			dims[i] = dimValue(d)
		}
		b.g.Input = append(b.g.Input, valueInfo(p.Name, dims...))
	}
	return p.Name
}

// node appends a node with one output named after the node and returns the
// output's name.
func (b *builder) node(op string, inputs []string, name string, attrs ...*onnxpb.AttributeProto) string {
	out := name + "_output_0"
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

// constInts adds an int64 initializer and returns its name.
func (b *builder) constInts(name string, v []int64) string {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{int64(len(v))}, Int64Data: v})
	return name
}

func (b *builder) model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(irVersion),
		ProducerName: proto.String(Producer),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:        b.g,
	}
}

func valueInfo(name string, dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}},
	}}}
}

func dimValue(v int64) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func dimParam(p string) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}
