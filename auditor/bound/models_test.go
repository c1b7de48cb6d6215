package bound_test

import (
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// netBuilder writes small test classifiers: one float32 input "x"
// [N, sample...], one output "y" [N, K], random weights from a seeded
// generator.
type netBuilder struct {
	rng   *rand.Rand
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
	last  string
	count int
}

func newNetBuilder(seed uint64) *netBuilder {
	return &netBuilder{rng: rand.New(rand.NewPCG(seed, 11)), last: "x"}
}

func (b *netBuilder) name(op string) string {
	b.count++
	return op + string(rune('a'+b.count))
}

// random adds an initializer of normal values of standard deviation sd.
func (b *netBuilder) random(dims []int64, sd float64) string {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(sd * b.rng.NormFloat64())
	}
	return b.init(dims, v)
}

func (b *netBuilder) init(dims []int64, v []float32) string {
	name := b.name("w")
	b.inits = append(b.inits, onnxgrad.NewTensorFloat32(name, dims, v))
	return name
}

// add appends a node reading the last output (and the extra inputs) and
// makes its output the last.
func (b *netBuilder) add(op string, extra []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.name(op)
	b.nodes = append(b.nodes, &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op),
		Input: append([]string{b.last}, extra...), Output: []string{out}, Attribute: attrs})
	b.last = out
	return out
}

func (b *netBuilder) dense(in, out int64) {
	b.add("Gemm", []string{b.random([]int64{out, in}, 1/sqrt(float64(in))), b.random([]int64{out}, 0.3)}, intAttr("transB", 1))
}

func sqrt(v float64) float64 {
	r := v
	for range 40 {
		r = (r + v/r) / 2
	}
	return r
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// model returns the classifier with input sample shape and k classes.
func (b *netBuilder) model(sample []int64, k int64) *onnxpb.ModelProto {
	b.nodes = append(b.nodes, &onnxpb.NodeProto{Name: proto.String("out"), OpType: proto.String("Identity"), Input: []string{b.last}, Output: []string{"y"}})
	in := []any{"N"}
	for _, s := range sample {
		in = append(in, s)
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{Name: proto.String("test"), Node: b.nodes, Initializer: b.inits,
			Input:  []*onnxpb.ValueInfoProto{{Name: proto.String("x"), Type: bound.FloatTensorType(in...)}},
			Output: []*onnxpb.ValueInfoProto{{Name: proto.String("y"), Type: bound.FloatTensorType("N", k)}}},
	}
}

// mlp2d is a ReLU network on 2-D inputs: (x − 0.5)·6, then 2 → h → h → k,
// whose decision boundaries cross the box [0, 1]² several times.
func mlp2d(seed uint64, h, k int64) *onnxpb.ModelProto {
	b := newNetBuilder(seed)
	b.add("Sub", []string{b.init([]int64{1}, []float32{0.5})})
	b.add("Mul", []string{b.init([]int64{1}, []float32{6})})
	b.dense(2, h)
	b.add("Relu", nil)
	b.dense(h, h)
	b.add("Relu", nil)
	b.dense(h, k)
	return b.model([]int64{2}, k)
}

// convNet exercises every supported op on a 2×6×6 input: Sub and Div (a
// normalisation), Conv with stride and padding, BatchNormalization, Relu,
// a residual Add, AveragePool without counting the padding, an overlapping
// padded MaxPool, Flatten, Gemm and MatMul with Add.
func convNet(seed uint64) *onnxpb.ModelProto {
	b := newNetBuilder(seed)
	b.add("Sub", []string{b.init([]int64{1, 2, 1, 1}, []float32{0.4, 0.6})})
	b.add("Div", []string{b.init([]int64{1, 2, 1, 1}, []float32{0.3, 0.2})})
	b.add("Conv", []string{b.random([]int64{3, 2, 3, 3}, 0.4), b.random([]int64{3}, 0.2)}, intsAttr("pads", 1, 1, 1, 1), intsAttr("kernel_shape", 3, 3))
	b.add("BatchNormalization", []string{b.init([]int64{3}, []float32{1.2, 0.7, -0.9}), b.init([]int64{3}, []float32{0.1, -0.2, 0.3}),
		b.init([]int64{3}, []float32{0.05, 0, -0.1}), b.init([]int64{3}, []float32{1.5, 0.8, 1.1})})
	skip := b.add("Relu", nil)
	b.add("Conv", []string{b.random([]int64{3, 1, 3, 3}, 0.5), b.random([]int64{3}, 0.1)}, intsAttr("pads", 1, 1, 1, 1), intAttr("group", 3), intsAttr("kernel_shape", 3, 3))
	b.add("Add", []string{skip})
	b.add("Relu", nil)
	b.add("AveragePool", nil, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1))
	b.add("Conv", []string{b.random([]int64{4, 3, 2, 2}, 0.4), b.random([]int64{4}, 0.1)}, intsAttr("strides", 1, 1), intsAttr("kernel_shape", 2, 2), intsAttr("pads", 1, 0, 0, 1))
	b.add("Relu", nil)
	b.add("MaxPool", nil, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 1, 1), intsAttr("pads", 1, 1, 1, 1))
	b.add("Flatten", nil)
	b.dense(36, 6)
	b.add("Relu", nil)
	b.add("MatMul", []string{b.random([]int64{6, 4}, 0.5)})
	b.add("Add", []string{b.random([]int64{4}, 0.3)})
	return b.model([]int64{2, 6, 6}, 4)
}
