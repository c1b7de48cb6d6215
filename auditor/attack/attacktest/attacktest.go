// Package attacktest builds models for tests of the attacks and the
// auditor.
package attacktest

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// NHWC returns a copy of the NCHW image classifier m that takes NHWC
// images, as TensorFlow/Keras exports and PyTorch's x.permute(0, 3, 1, 2)
// in front of a model give: its image input NAME [N, C, H, W] becomes
// NAME_nhwc [N, H, W, C], read by a Transpose with perm [0, 3, 1, 2] whose
// output is NAME. Its scores on an image equal m's on the image
// transposed. It panics unless m has one input besides its initializers,
// declared with rank 4.
func NHWC(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	var in *onnxpb.ValueInfoProto
	for _, vi := range g.GetInput() {
		if !slices.ContainsFunc(g.GetInitializer(), func(t *onnxpb.TensorProto) bool { return t.GetName() == vi.GetName() }) {
			if in != nil {
				panic("attacktest: the model has more than one input")
			}
			in = vi
		}
	}
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 4 {
		panic(fmt.Sprintf("attacktest: input %q has rank %d, want 4", in.GetName(), len(dims)))
	}
	name := in.GetName()
	in.Name = proto.String(name + "_nhwc")
	in.Type.GetTensorType().Shape.Dim = []*onnxpb.TensorShapeProto_Dimension{dims[0], dims[2], dims[3], dims[1]}
	perm := &onnxpb.AttributeProto{Name: proto.String("perm"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{0, 3, 1, 2}}
	t := &onnxpb.NodeProto{Name: proto.String("attacktest/ToNCHW"), OpType: proto.String("Transpose"),
		Input: []string{in.GetName()}, Output: []string{name}, Attribute: []*onnxpb.AttributeProto{perm}}
	g.Node = append([]*onnxpb.NodeProto{t}, g.GetNode()...)
	return m
}
