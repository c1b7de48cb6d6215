// Package testmodels makes, for the tests of several packages, variants of
// the fixture models in testdata/models as other exporters write them.
package testmodels

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// FixBatch returns a copy of the fixture m (input [N, ...], output
// [N, K]) as torch.onnx.export writes it without dynamic_axes, traced on a
// batch of b images: the input's and output's dimension 0 is b, and the
// flattening to [N, D] (a Flatten, or the Reshape of x.view(x.size(0), -1)
// with its target computed from Shape) is a Reshape to the constant
// [b, -1].
func FixBatch(m *onnxpb.ModelProto, b int64) *onnxpb.ModelProto {
	return fixBatch(m, b, false)
}

// MergeBatch is FixBatch with the flattening done by two Reshapes, to [-1]
// and to [b, -1]: the first merges the batch with the pixels, so the model
// computes per image only for exactly b images at a time, and no rewrite of
// its constants can make the batch symbolic.
func MergeBatch(m *onnxpb.ModelProto, b int64) *onnxpb.ModelProto {
	return fixBatch(m, b, true)
}

func fixBatch(m *onnxpb.ModelProto, b int64, merge bool) *onnxpb.ModelProto {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	for _, vi := range []*onnxpb.ValueInfoProto{g.GetInput()[0], g.GetOutput()[0]} {
		vi.GetType().GetTensorType().GetShape().GetDim()[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: b}}
	}
	consts := map[string]bool{}
	for _, t := range g.GetInitializer() {
		consts[t.GetName()] = true
	}
	target := func(name string, v ...int64) string {
		g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v})
		return name
	}
	var nodes []*onnxpb.NodeProto
	flattened := 0
	for _, n := range g.GetNode() {
		isFlatten := n.GetOpType() == "Flatten" || (n.GetOpType() == "Reshape" && !consts[n.GetInput()[1]])
		if !isFlatten {
			nodes = append(nodes, n)
			continue
		}
		flattened++
		x, y := n.GetInput()[0], n.GetOutput()[0]
		if merge {
			flat := y + "/merged"
			nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String(n.GetName() + "/merge"), OpType: proto.String("Reshape"),
				Input: []string{x, target(n.GetName()+"/all", -1)}, Output: []string{flat}})
			x = flat
		}
		nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String(n.GetName()), OpType: proto.String("Reshape"),
			Input: []string{x, target(n.GetName()+"/shape", b, -1)}, Output: []string{y}})
	}
	if flattened != 1 {
		panic(fmt.Sprintf("testmodels: %s has %d flattening nodes, want 1", g.GetName(), flattened))
	}
	g.Node = nodes
	if err := onnxgrad.Validate(m, "fixed batch"); err != nil {
		panic(err)
	}
	return m
}

// Legacy returns a copy of m as older exporters (CNTK, whose MNIST model
// in the ONNX model zoo is opset 8 with a batch fixed at 1) write it: IR
// version 3, default-domain opset 8, and every initializer also listed
// among the graph inputs, as IR versions before 4 require. m must use
// only operators whose form is the same at opset 8.
func Legacy(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	m.IrVersion = proto.Int64(3)
	m.OpsetImport = []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(8)}}
	g := m.GetGraph()
	for _, n := range g.GetNode() {
		// MaxPool gained ceil_mode and dilations at opset 10; torch writes
		// their defaults.
		if n.GetOpType() == "MaxPool" {
			n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool {
				return (a.GetName() == "ceil_mode" && a.GetI() == 0) || (a.GetName() == "dilations" && !slices.ContainsFunc(a.GetInts(), func(d int64) bool { return d != 1 }))
			})
		}
	}
	for _, t := range g.GetInitializer() {
		vi := &onnxpb.ValueInfoProto{Name: proto.String(t.GetName()), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(t.GetDataType()), Shape: &onnxpb.TensorShapeProto{},
		}}}}
		for _, d := range t.GetDims() {
			vi.GetType().GetTensorType().GetShape().Dim = append(vi.GetType().GetTensorType().GetShape().Dim,
				&onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		g.Input = append(g.Input, vi)
	}
	if err := onnxgrad.Validate(m, "legacy"); err != nil {
		panic(err)
	}
	return m
}

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
				panic("testmodels: the model has more than one input")
			}
			in = vi
		}
	}
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 4 {
		panic(fmt.Sprintf("testmodels: input %q has rank %d, want 4", in.GetName(), len(dims)))
	}
	name := in.GetName()
	in.Name = proto.String(name + "_nhwc")
	in.Type.GetTensorType().Shape.Dim = []*onnxpb.TensorShapeProto_Dimension{dims[0], dims[2], dims[3], dims[1]}
	perm := &onnxpb.AttributeProto{Name: proto.String("perm"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{0, 3, 1, 2}}
	t := &onnxpb.NodeProto{Name: proto.String("testmodels/ToNCHW"), OpType: proto.String("Transpose"),
		Input: []string{in.GetName()}, Output: []string{name}, Attribute: []*onnxpb.AttributeProto{perm}}
	g.Node = append([]*onnxpb.NodeProto{t}, g.GetNode()...)
	return m
}

// Fixture loads the fixture dir/NAME.onnx and its inputs dir/NAME.x.npy,
// failing t when either cannot be read.
func Fixture(t testing.TB, dir, name string) (*onnxpb.ModelProto, *npy.Array) {
	t.Helper()
	m, err := onnxgrad.Load(filepath.Join(dir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile(filepath.Join(dir, name+".x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return m, x
}
